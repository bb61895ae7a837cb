#include "net/http_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url.hpp>
#include <cctype>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

namespace apilake {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// How long a connection may sit idle (or trickle a request / stall a response) before it is closed.
constexpr std::chrono::seconds kIdleTimeout{30};
// After a 413 the client may still be sending its body; reading (and discarding) it before closing
// avoids a TCP reset that would destroy the 413 before the client reads it. Bounded in bytes and time.
constexpr std::size_t kMaxDrainBytes = 64u << 20;
constexpr std::chrono::seconds kDrainTimeout{5};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  return out;
}


bool valid_field_name(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

bool valid_field_value(std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos && s.find('\0') == std::string_view::npos; }

struct Context {
  AsyncHandler handler;
  std::size_t max_body_bytes;
  // Answers owed by handlers (a Reply not yet posted back to its session). stop() waits for them:
  // a Session must not outlive its io_context.
  std::mutex mu;
  std::condition_variable cv;
  std::size_t owed = 0;
  std::atomic<bool> stopping{false};
};

using Response = http::response<http::string_body>;

// Turns what a handler returned into a Beast response; throws std::invalid_argument when the handler
// produced something that cannot go on the wire.
Response to_wire(ServerResponse&& sr, unsigned version, bool keep_alive, bool head) {
  if (sr.status < 100 || sr.status > 999) throw std::invalid_argument(fmt::format("invalid status {}", sr.status));
  Response res;
  res.version(version);
  res.result(static_cast<unsigned>(sr.status));
  res.set(http::field::server, "apilake");
  if (!sr.content_type.empty()) {
    if (!valid_field_value(sr.content_type)) throw std::invalid_argument("invalid content type");
    res.set(http::field::content_type, sr.content_type);
  }
  for (auto& [name, value] : sr.headers) {
    if (!valid_field_name(name) || !valid_field_value(value))
      throw std::invalid_argument(fmt::format("invalid response header '{}'", name));
    // Framing is the server's business; a handler's copy would contradict the real one.
    if (iequals(name, "content-length") || iequals(name, "transfer-encoding") || iequals(name, "connection"))
      continue;
    res.insert(name, value);
  }
  res.keep_alive(keep_alive);
  const unsigned status = static_cast<unsigned>(sr.status);
  if (status < 200 || status == 204 || status == 304) {
    // These statuses have no body by definition.
    res.prepare_payload();
  } else if (head) {
    // HEAD announces the length of the GET body without sending it.
    res.content_length(sr.body.size());
  } else {
    res.body() = std::move(sr.body);
    res.prepare_payload();
  }
  return res;
}

class Session;

// The answer a handler owes to one request: converted to the wire format on the answering thread,
// then posted to the session's strand. Sent at most once; dropped unsent, it answers 500.
class Reply {
 public:
  Reply(std::shared_ptr<Session> session, std::shared_ptr<Context> ctx, unsigned version, bool keep_alive, bool head)
      : session_(std::move(session)), ctx_(std::move(ctx)), version_(version), keep_alive_(keep_alive), head_(head) {
    std::lock_guard lock(ctx_->mu);
    ++ctx_->owed;
  }
  ~Reply() {
    if (!sent_.load()) {
      spdlog::error("http server: a handler dropped a request without answering it");
      send(problem(500, "Internal Server Error", "the request could not be handled"));
    }
  }
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  void send(ServerResponse&& sr);

 private:
  std::shared_ptr<Session> session_;
  std::shared_ptr<Context> ctx_;
  unsigned version_;
  bool keep_alive_;
  bool head_;
  std::atomic<bool> sent_{false};
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, std::shared_ptr<Context> ctx)
      : stream_(std::move(socket)), ctx_(std::move(ctx)) {
    boost::system::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      remote_ = ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                                     : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    }
  }

  void run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

  // Sends a handler's answer; runs on the session's strand (Reply posts it there).
  void respond(Response&& res) { send(std::move(res), false); }
  auto executor() { return stream_.get_executor(); }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(ctx_->max_body_bytes);
    stream_.expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted)
      return close();
    if (ec == http::error::body_limit) {
      auto p = problem(413, "Payload Too Large",
                       fmt::format("request body exceeds the limit of {} bytes", ctx_->max_body_bytes));
      return send(to_wire(std::move(p), 11, false, false), /*drain=*/true);
    }
    if (ec == http::error::header_limit) {
      auto p = problem(431, "Request Header Fields Too Large", "request header exceeds the server limit");
      return send(to_wire(std::move(p), 11, false, false), true);
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      auto p = problem(400, "Bad Request", fmt::format("malformed HTTP request: {}", ec.message()));
      return send(to_wire(std::move(p), 11, false, false), true);
    }
    if (ec) return close();  // reset by peer and the like: nobody to answer
    handle(parser_->release());
  }

  void handle(http::request<http::string_body>&& req) {
    const bool keep_alive = req.keep_alive();
    const bool head = req.method() == http::verb::head;
    const unsigned version = req.version();

    ServerRequest sr;
    sr.method = std::string(req.method_string());
    sr.target = std::string(req.target());
    sr.remote = remote_;
    // Origin form ("/path?q") is what clients send; absolute form is legal too (RFC 9112 3.2.2).
    auto parsed = boost::urls::parse_origin_form(sr.target);
    if (!parsed) parsed = boost::urls::parse_absolute_uri(sr.target);
    if (!parsed) {
      auto p = problem(400, "Bad Request", "malformed request target");
      return send(to_wire(std::move(p), version, keep_alive, head), false);
    }
    sr.path = parsed->path();
    if (sr.path.empty()) sr.path = "/";
    // params() decodes percent-escapes and '+' as space (form encoding).
    for (auto param : parsed->params()) {
      if (param.key.empty() && !param.has_value) continue;  // "?" or "a&&b"
      sr.query.emplace_back(std::move(param.key), param.has_value ? std::move(param.value) : std::string());
    }
    sr.headers.reserve(static_cast<std::size_t>(std::distance(req.begin(), req.end())));
    for (const auto& field : req) sr.headers.emplace_back(lower(field.name_string()), std::string(field.value()));
    sr.body = std::move(req.body());

    // Stopping: owed answers are being drained; take no new work.
    if (ctx_->stopping.load(std::memory_order_relaxed)) return close();
    auto reply = std::make_shared<Reply>(shared_from_this(), ctx_, version, keep_alive, head);
    try {
      ctx_->handler(sr, [reply](ServerResponse r) { reply->send(std::move(r)); });
    } catch (const std::exception& e) {
      spdlog::error("http server: {} {} failed: {}", sr.method, sr.target, e.what());
      reply->send(problem(500, "Internal Server Error", "the request could not be handled"));
    } catch (...) {
      spdlog::error("http server: {} {} failed with a non-standard exception", sr.method, sr.target);
      reply->send(problem(500, "Internal Server Error", "the request could not be handled"));
    }
  }

  void send(Response&& res, bool drain) {
    res_ = std::move(res);
    stream_.expires_after(kIdleTimeout);
    http::async_write(stream_, res_, [self = shared_from_this(), drain](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      if (drain) return self->start_drain();
      if (!self->res_.keep_alive()) return self->close();
      self->read();
    });
  }

  void start_drain() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    drained_ = 0;
    stream_.expires_after(kDrainTimeout);
    drain();
  }

  void drain() {
    stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > kMaxDrainBytes) return self->close();
      self->drain();
    });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  beast::tcp_stream stream_;
  std::shared_ptr<Context> ctx_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Response res_;  // must outlive async_write
  std::string remote_;
  std::size_t drained_ = 0;
  std::array<char, 16384> scratch_{};
};

void Reply::send(ServerResponse&& sr) {
  if (sent_.exchange(true)) return;  // answered already (e.g. a handler that answered, then threw)
  Response res;
  try {
    res = to_wire(std::move(sr), version_, keep_alive_, head_);
  } catch (const std::exception& e) {
    spdlog::error("http server: a handler's response cannot go on the wire: {}", e.what());
    res = to_wire(problem(500, "Internal Server Error", "the request could not be handled"), version_, keep_alive_,
                  head_);
  }
  auto session = std::move(session_);
  // Owed until the write has started on the session's strand (asio writes what it can at once), so
  // stop() does not stop the io_context between the post and the write.
  asio::post(session->executor(), [session, ctx = ctx_, res = std::move(res)]() mutable {
    session->respond(std::move(res));
    std::lock_guard lock(ctx->mu);
    if (--ctx->owed == 0) ctx->cv.notify_all();
  });
}

}  // namespace

ServerResponse problem(int status, std::string_view title, std::string_view detail) {
  ServerResponse r;
  r.status = status;
  r.content_type = "application/problem+json";
  r.body = fmt::format(R"({{"type":"about:blank","title":"{}","status":{},"detail":"{}"}})", json_escape(title),
                       status, json_escape(detail));
  return r;
}

std::string ServerRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

std::string ServerRequest::query_param(std::string_view name) const {
  for (const auto& [k, v] : query)
    if (k == name) return v;
  return {};
}

struct HttpServer::Impl {
  ServerOptions options;
  std::shared_ptr<Context> ctx;
  // Pointers so stop() can destroy them: destroying the io_context destroys every pending handler and
  // with it every session, which closes the connections. The acceptor must go before its io_context.
  std::unique_ptr<asio::io_context> ioc;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  std::mutex mu;
  bool started = false;
  bool stopped = false;
  uint16_t bound_port = 0;

  void accept() {
    acceptor->async_accept(asio::make_strand(*ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      if (ec) {
        // e.g. EMFILE: keep the listener alive rather than give up serving.
        spdlog::warn("http server: accept failed: {}", ec.message());
      } else {
        std::make_shared<Session>(std::move(socket), ctx)->run();
      }
      accept();
    });
  }
};

HttpServer::HttpServer(ServerOptions options, AsyncHandler handler) : impl_(std::make_unique<Impl>()) {
  if (!handler) throw std::invalid_argument("HttpServer needs a handler");
  impl_->ctx = std::make_shared<Context>();
  impl_->ctx->handler = std::move(handler);
  impl_->ctx->max_body_bytes = options.max_body_bytes;
  impl_->options = std::move(options);
  impl_->bound_port = impl_->options.port;
}

HttpServer::HttpServer(ServerOptions options, Handler handler)
    : HttpServer(std::move(options), handler ? AsyncHandler([h = std::move(handler)](const ServerRequest& r,
                                                                                     Responder reply) { reply(h(r)); })
                                             : AsyncHandler()) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->started) throw std::runtime_error("HttpServer::start called twice");
  impl_->started = true;
  const auto& o = impl_->options;
  impl_->ioc = std::make_unique<asio::io_context>(std::max(o.threads, 1));
  impl_->acceptor = std::make_unique<tcp::acceptor>(*impl_->ioc);
  auto fail = [&](const std::string& what, const beast::error_code& ec) {
    impl_->acceptor.reset();
    impl_->ioc.reset();
    throw std::runtime_error(fmt::format("http server: cannot {} {}:{}: {}", what, o.host, o.port, ec.message()));
  };

  beast::error_code ec;
  tcp::resolver resolver(*impl_->ioc);
  auto endpoints = resolver.resolve(o.host, std::to_string(o.port), tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) fail("resolve", ec);
  const tcp::endpoint ep = endpoints.begin()->endpoint();
  auto& acc = *impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (ec) fail("open a socket for", ec);
  // Lets a restarted server bind while old connections linger in TIME_WAIT.
  acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) fail("set reuse_address on", ec);
  acc.bind(ep, ec);
  if (ec) fail("bind", ec);
  acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("listen on", ec);
  impl_->bound_port = acc.local_endpoint().port();

  impl_->accept();
  for (int i = 0; i < std::max(o.threads, 1); ++i) {
    impl_->threads.emplace_back([ioc = impl_->ioc.get()] {
      for (;;) {
        try {
          ioc->run();
          return;
        } catch (const std::exception& e) {
          // A handler escaped its own error handling; the server keeps running.
          spdlog::error("http server: unexpected exception in io thread: {}", e.what());
        }
      }
    });
  }
  spdlog::debug("http server listening on {}:{}", o.host, impl_->bound_port);
}

void HttpServer::stop() {
  std::lock_guard lock(impl_->mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  if (!impl_->ioc) return;  // never started (or failed to)
  // Answers still owed by handlers (e.g. waiting for a group commit) are sent first: their sessions
  // must not outlive the io_context. New requests are refused meanwhile.
  auto& ctx = *impl_->ctx;
  ctx.stopping = true;
  bool drained = false;
  {
    std::unique_lock owed_lock(ctx.mu);
    drained = ctx.cv.wait_for(owed_lock, std::chrono::seconds(10), [&] { return ctx.owed == 0; });
  }
  impl_->ioc->stop();
  bool from_io_thread = false;
  for (auto& t : impl_->threads) {
    if (t.get_id() == std::this_thread::get_id()) {
      // stop() from inside a handler: joining ourselves would deadlock. The io_context is stopped,
      // so this thread leaves run() once its handler returns.
      from_io_thread = true;
      t.detach();
      continue;
    }
    if (t.joinable()) t.join();
  }
  impl_->threads.clear();
  beast::error_code ec;
  if (from_io_thread) {
    // The running handler still lives inside the io_context: only stop listening here.
    impl_->acceptor->close(ec);
    return;
  }
  impl_->acceptor->close(ec);
  if (!drained) {
    // A handler still holds a Reply (and with it a session): destroying the io_context under it
    // would crash later. Leak both instead; this only happens with a handler stuck for 10 s.
    spdlog::error("http server: stopped with answers still owed after 10 s; leaking the io context");
    (void)impl_->acceptor.release();
    (void)impl_->ioc.release();
    return;
  }
  impl_->acceptor.reset();
  impl_->ioc.reset();
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

}  // namespace apilake
