#include "net/http_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url.hpp>
#include <cctype>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
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
// A request body buffer larger than this is freed after its request rather than kept for the next.
constexpr std::size_t kKeptBodyCapacity = 64u << 10;

// Each io thread runs its own io_context; a connection lives on one of them, so its handlers never
// run concurrently and need no strand.
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, Executor>;
using Clock = std::chrono::steady_clock;

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
  // Answers owed by handlers (a Reply not yet handed to its connection's thread). stop() waits for
  // them: a Session must not outlive its io_context. Counted without a lock; the mutex and the cv
  // only matter once stopping.
  std::atomic<std::size_t> owed{0};
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::condition_variable cv;
  void release() {
    // seq_cst: either stop() sees the count drop, or this sees `stopping` and wakes it.
    if (owed.fetch_sub(1) == 1 && stopping.load()) {
      std::lock_guard lock(mu);
      cv.notify_all();
    }
  }
};

// Writes the response head (status line and fields, ending with the blank line) for `sr` into `out`
// and tells whether the body goes on the wire; throws std::invalid_argument when the handler produced
// something that cannot go on the wire. Framing (Content-Length, Connection) is the server's.
bool write_head(std::string& out, const ServerResponse& sr, unsigned version, bool keep_alive, bool head) {
  if (sr.status < 100 || sr.status > 999) throw std::invalid_argument(fmt::format("invalid status {}", sr.status));
  if (!sr.content_type.empty() && !valid_field_value(sr.content_type))
    throw std::invalid_argument("invalid content type");
  for (const auto& [name, value] : sr.headers)
    if (!valid_field_name(name) || !valid_field_value(value))
      throw std::invalid_argument(fmt::format("invalid response header '{}'", name));
  const auto status = static_cast<unsigned>(sr.status);
  out.clear();
  out += "HTTP/";
  out += static_cast<char>('0' + version / 10 % 10);
  out += '.';
  out += static_cast<char>('0' + version % 10);
  out += ' ';
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, status).ptr);
  out += ' ';
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  out.append(reason.data(), reason.size());
  out += "\r\nServer: apilake\r\n";
  if (!sr.content_type.empty()) {
    out += "Content-Type: ";
    out += sr.content_type;
    out += "\r\n";
  }
  for (const auto& [name, value] : sr.headers) {
    // A handler's copy of the framing would contradict the real one.
    if (iequals(name, "content-length") || iequals(name, "transfer-encoding") || iequals(name, "connection"))
      continue;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (version >= 11 && !keep_alive) out += "Connection: close\r\n";
  if (version < 11 && keep_alive) out += "Connection: keep-alive\r\n";
  // These statuses have no body by definition; HEAD announces the length of the GET body only.
  const bool bodiless = status < 200 || status == 204 || status == 304;
  if (!bodiless) {
    out += "Content-Length: ";
    out.append(digits, std::to_chars(digits, digits + sizeof digits, sr.body.size()).ptr);
    out += "\r\n";
  }
  out += "\r\n";
  return !bodiless && !head;
}

// The request being read on one connection, in storage kept from request to request: once the
// buffers have grown, reading a request allocates nothing.
struct Incoming {
  ServerRequest req;
  http::verb verb = http::verb::unknown;
  unsigned version = 11;
  std::string fields;  // the header names and values back to back; `spans` index into it
  struct Span {
    std::size_t name_at, name_len, value_at, value_len;
  };
  std::vector<Span> spans;

  void reset() {
    fields.clear();
    spans.clear();
    req.headers.clear();
    req.query.clear();
    if (req.body.capacity() > kKeptBodyCapacity) std::string().swap(req.body);
    else req.body.clear();
  }
  void add_field(std::string_view name, std::string_view value) {
    spans.push_back({fields.size(), name.size(), fields.size() + name.size(), value.size()});
    fields += name;
    fields += value;
  }
  // Called once the header is complete (`fields` no longer grows, so the views stay valid).
  void publish_headers() {
    req.headers.reserve(spans.size());
    for (const auto& s : spans)
      req.headers.emplace_back(std::string_view(fields).substr(s.name_at, s.name_len),
                               std::string_view(fields).substr(s.value_at, s.value_len));
  }
};

// Beast's parser does the HTTP/1.1 grammar, the header and body limits and chunked decoding; this
// stores what it finds into the connection's Incoming instead of a freshly allocated message.
class RequestParser final : public http::basic_parser<true> {
 public:
  explicit RequestParser(Incoming& in) : in_(in) {}

 private:
  void on_request_impl(http::verb method, beast::string_view method_str, beast::string_view target, int version,
                       beast::error_code&) override {
    in_.verb = method;
    in_.version = static_cast<unsigned>(version);
    in_.req.method.assign(method_str.data(), method_str.size());
    in_.req.target.assign(target.data(), target.size());
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}  // requests only
  void on_field_impl(http::field, beast::string_view name, beast::string_view value, beast::error_code&) override {
    in_.add_field({name.data(), name.size()}, {value.data(), value.size()});
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, beast::error_code&) override {
    // The parser has checked the length against the body limit already.
    if (length) in_.req.body.reserve(static_cast<std::size_t>(*length));
  }
  std::size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    in_.req.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
    in_.req.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  Incoming& in_;
};

class Session;

// Answers handed over from other threads (e.g. the extraction store's writer, answering a whole
// group commit) to one io thread: the first queues one drain there, the rest only join the queue,
// so a batch of N answers costs the io thread one wake-up instead of N (each post takes the
// io_context's lock and may wake the thread).
struct Inbox {
  std::mutex mu;
  std::vector<std::shared_ptr<Session>> pending;
  std::vector<std::shared_ptr<Session>> draining;  // the io thread's only
  void drain();
};

// One io thread's io_context and inbox (declared first: destroyed after the io_context and the
// handlers it still holds).
struct IoThread {
  Inbox inbox;
  asio::io_context ioc{1};  // concurrency hint 1: run by one thread (posts from others stay safe)
};

// The answer a handler owes to one request. Sent at most once; dropped unsent, it answers 500.
class Reply {
 public:
  Reply(std::shared_ptr<Session> session, unsigned version, bool keep_alive, bool head)
      : session_(std::move(session)), version_(version), keep_alive_(keep_alive), head_(head) {}
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
  unsigned version_;
  bool keep_alive_;
  bool head_;
  std::atomic<bool> sent_{false};
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket&& socket, std::shared_ptr<Context> ctx, Inbox& inbox)
      : socket_(std::move(socket)), ex_(socket_.get_executor()), timer_(ex_), ctx_(std::move(ctx)), inbox_(inbox) {
    boost::system::error_code ec;
    // Small answers go out at once instead of waiting for the client's delayed ACK (Nagle).
    socket_.set_option(tcp::no_delay(true), ec);
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      in_.req.remote = ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                                            : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    }
  }

  void run() {
    asio::dispatch(ex_, [self = shared_from_this()] { self->read(); });
  }

  // Hands a handler's answer to the connection, from any thread. The head is formatted here, into the
  // connection's buffer (idle until the answer is written: one request at a time per connection);
  // the write starts on the connection's thread. Called once per request (Reply sees to it).
  void answer(ServerResponse&& sr, unsigned version, bool keep_alive, bool head) {
    format(std::move(sr), version, keep_alive, head);
    // Owed until the write has started on the connection's thread (asio writes what it can at once),
    // so stop() does not stop the io_context between the post and the write.
    if (ex_.running_in_this_thread()) {  // a synchronous answer, from inside handle()
      write_answer();
      ctx_->release();
      return;
    }
    bool first;
    {
      std::lock_guard lock(inbox_.mu);
      first = inbox_.pending.empty();
      inbox_.pending.push_back(shared_from_this());
    }
    if (first) asio::post(ex_, [inbox = &inbox_] { inbox->drain(); });
  }

  // The write of an answer handed over through the inbox; on the connection's thread.
  void write_handed_over() {
    write_answer();
    ctx_->release();
  }

 private:
  void read() {
    in_.reset();
    parser_.emplace(in_);
    parser_->body_limit(ctx_->max_body_bytes);
    touch(kIdleTimeout);
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (!open_ || ec == http::error::end_of_stream || ec == asio::error::operation_aborted) return close();
    if (ec == http::error::body_limit) {
      return fail(problem(413, "Payload Too Large",
                          fmt::format("request body exceeds the limit of {} bytes", ctx_->max_body_bytes)));
    }
    if (ec == http::error::header_limit)
      return fail(problem(431, "Request Header Fields Too Large", "request header exceeds the server limit"));
    if (ec.category() == http::make_error_code(http::error::bad_target).category())
      return fail(problem(400, "Bad Request", fmt::format("malformed HTTP request: {}", ec.message())));
    if (ec) return close();  // reset by peer and the like: nobody to answer
    handle();
  }

  void handle() {
    const bool keep_alive = parser_->keep_alive();
    const bool head = in_.verb == http::verb::head;
    const unsigned version = in_.version;
    ServerRequest& sr = in_.req;
    // Origin form ("/path?q") is what clients send; absolute form is legal too (RFC 9112 3.2.2).
    auto parsed = boost::urls::parse_origin_form(sr.target);
    if (!parsed) parsed = boost::urls::parse_absolute_uri(sr.target);
    if (!parsed) {
      format(problem(400, "Bad Request", "malformed request target"), version, keep_alive, head);
      return write_answer();
    }
    // Decoded only when there is something to decode (the common path has no escapes).
    if (auto encoded = parsed->encoded_path(); encoded.find('%') == std::string_view::npos)
      sr.path.assign(encoded.data(), encoded.size());
    else
      sr.path = parsed->path();
    if (sr.path.empty()) sr.path = "/";
    if (parsed->has_query()) {
      // params() decodes percent-escapes and '+' as space (form encoding).
      for (auto param : parsed->params()) {
        if (param.key.empty() && !param.has_value) continue;  // "?" or "a&&b"
        sr.query.emplace_back(std::move(param.key), param.has_value ? std::move(param.value) : std::string());
      }
    }
    in_.publish_headers();

    // Stopping: owed answers are being drained; take no new work. Counted first, checked after, so
    // stop() either sees this request owed or this sees it stopping.
    ctx_->owed.fetch_add(1);
    if (ctx_->stopping.load()) {
      ctx_->release();
      return close();
    }
    handling_ = true;  // the idle timeout does not run while a handler owes the answer
    auto reply = std::make_shared<Reply>(shared_from_this(), version, keep_alive, head);
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

  // Formats an answer into head_ and body_ (an answer that cannot go on the wire becomes a 500).
  void format(ServerResponse&& sr, unsigned version, bool keep_alive, bool head) {
    try {
      send_body_ = write_head(head_, sr, version, keep_alive, head);
    } catch (const std::exception& e) {
      spdlog::error("http server: a handler's response cannot go on the wire: {}", e.what());
      sr = problem(500, "Internal Server Error", "the request could not be handled");
      send_body_ = write_head(head_, sr, version, keep_alive, head);
    }
    body_ = std::move(sr.body);
    keep_alive_ = keep_alive;
    drain_ = false;
  }

  // The server's own answer to a request it could not read: then drain what the client still sends
  // and close.
  void fail(ServerResponse&& p) {
    send_body_ = write_head(head_, p, 11, false, false);
    body_ = std::move(p.body);
    keep_alive_ = false;
    drain_ = true;
    write_answer();
  }

  // One gather write (one writev) of the head and the body. On the connection's thread.
  void write_answer() {
    handling_ = false;
    touch(kIdleTimeout);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head_),
                                              send_body_ ? asio::const_buffer(body_.data(), body_.size())
                                                                         : asio::const_buffer()};
    asio::async_write(socket_, buffers, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      std::string().swap(self->body_);  // a large body is not kept alive with an idle connection
      if (ec) return self->close();
      if (self->drain_) return self->start_drain();
      if (!self->keep_alive_) return self->close();
      self->read();
    });
  }

  void start_drain() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    drained_ = 0;
    scratch_.resize(16384);
    touch(kDrainTimeout);
    drain();
  }

  void drain() {
    socket_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > kMaxDrainBytes) return self->close();
      self->drain();
    });
  }

  // The idle timeout, without a timer operation per read and write: each operation moves the
  // deadline, and one timer per connection wakes only when the deadline may have passed.
  void touch(Clock::duration timeout) {
    if (!open_) return;  // closed: nothing left to time out
    deadline_ = Clock::now() + timeout;
    if (!timer_armed_ || deadline_ < timer_.expiry()) arm(deadline_);
  }

  void arm(Clock::time_point at) {
    timer_armed_ = true;
    timer_.expires_at(at);  // cancels a pending wait: its handler sees operation_aborted
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec == asio::error::operation_aborted) return;  // re-armed or closed
      self->timer_armed_ = false;
      if (!self->open_) return;
      const auto now = Clock::now();
      if (self->handling_) return self->arm(now + kIdleTimeout);
      if (now < self->deadline_) return self->arm(self->deadline_);
      self->close();  // idle or stalled: the pending operation completes with an error
    });
  }

  void close() {
    if (!open_) return;
    open_ = false;
    timer_.cancel();
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  Socket socket_;
  Executor ex_;
  Timer timer_;
  std::shared_ptr<Context> ctx_;
  Inbox& inbox_;
  beast::flat_buffer buffer_;
  Incoming in_;
  std::optional<RequestParser> parser_;
  std::string head_;  // the answer's head and body: must outlive async_write
  std::string body_;
  bool send_body_ = true;
  bool keep_alive_ = true;
  bool drain_ = false;
  bool open_ = true;
  bool handling_ = false;
  bool timer_armed_ = false;
  Clock::time_point deadline_{};
  std::size_t drained_ = 0;
  std::vector<char> scratch_;  // the drain's discard buffer, allocated when needed
};

void Inbox::drain() {
  {
    std::lock_guard lock(mu);
    draining.swap(pending);
  }
  for (auto& session : draining) session->write_handed_over();
  draining.clear();
}

void Reply::send(ServerResponse&& sr) {
  if (sent_.exchange(true)) return;  // answered already (e.g. a handler that answered, then threw)
  auto session = std::move(session_);
  session->answer(std::move(sr), version_, keep_alive_, head_);
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
    if (iequals(k, name)) return std::string(v);
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
  // One io_context per io thread (index 0 also runs the acceptor). Pointers so stop() can destroy
  // them: destroying an io_context destroys every pending handler and with it every session, which
  // closes the connections. The acceptor must go before its io_context.
  std::vector<std::unique_ptr<IoThread>> iocs;
  std::vector<asio::executor_work_guard<Executor>> work;  // idle io threads keep running
  std::unique_ptr<tcp::acceptor> acceptor;
  std::size_t next = 0;  // the io_context the next connection goes to (round robin)
  std::vector<std::thread> threads;
  std::mutex mu;
  bool started = false;
  bool stopped = false;
  uint16_t bound_port = 0;

  void accept() {
    IoThread& target = *iocs[next++ % iocs.size()];
    acceptor->async_accept(target.ioc.get_executor(), [this, &target](beast::error_code ec, Socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      if (ec) {
        // e.g. EMFILE: keep the listener alive rather than give up serving.
        spdlog::warn("http server: accept failed: {}", ec.message());
      } else {
        std::make_shared<Session>(std::move(socket), ctx, target.inbox)->run();
      }
      accept();
    });
  }

  void destroy() {
    acceptor.reset();
    work.clear();
    // In index order: the first one's pending accept may hold a socket of another.
    for (auto& c : iocs) c.reset();
    iocs.clear();
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
  const int n = std::max(o.threads, 1);
  for (int i = 0; i < n; ++i) impl_->iocs.push_back(std::make_unique<IoThread>());
  impl_->acceptor = std::make_unique<tcp::acceptor>(impl_->iocs.front()->ioc);
  auto fail = [&](const std::string& what, const beast::error_code& ec) {
    impl_->destroy();
    throw std::runtime_error(fmt::format("http server: cannot {} {}:{}: {}", what, o.host, o.port, ec.message()));
  };

  beast::error_code ec;
  tcp::resolver resolver(impl_->iocs.front()->ioc);
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
  for (auto& io : impl_->iocs) {
    impl_->work.push_back(asio::make_work_guard(io->ioc.get_executor()));
    impl_->threads.emplace_back([ioc = &io->ioc] {
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
  spdlog::debug("http server listening on {}:{} ({} io threads)", o.host, impl_->bound_port, n);
}

void HttpServer::stop() {
  std::lock_guard lock(impl_->mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  if (impl_->iocs.empty()) return;  // never started (or failed to)
  // Answers still owed by handlers (e.g. waiting for a group commit) are sent first: their sessions
  // must not outlive the io_context. New requests are refused meanwhile.
  auto& ctx = *impl_->ctx;
  ctx.stopping = true;
  bool drained = false;
  {
    std::unique_lock owed_lock(ctx.mu);
    drained = ctx.cv.wait_for(owed_lock, std::chrono::seconds(10), [&] { return ctx.owed.load() == 0; });
  }
  for (auto& io : impl_->iocs) io->ioc.stop();
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
  impl_->acceptor->close(ec);
  // The running handler still lives inside an io_context: only stop listening here.
  if (from_io_thread) return;
  if (!drained) {
    // A handler still holds a Reply (and with it a session): destroying the io_contexts under it
    // would crash later. Leak them instead; this only happens with a handler stuck for 10 s.
    spdlog::error("http server: stopped with answers still owed after 10 s; leaking the io contexts");
    (void)impl_->acceptor.release();
    impl_->work.clear();
    for (auto& c : impl_->iocs) (void)c.release();
    return;
  }
  impl_->destroy();
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

}  // namespace apilake
