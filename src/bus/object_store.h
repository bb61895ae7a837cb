// What the object ledger needs from a store of small objects: the lake, seen through this interface
// so that bus/ does not import lake/ (src/app/lake_object_store.h adapts a Lake). Paths are
// '/'-separated and relative to the store's root; put() makes the whole object appear atomically
// (an object name is a commit point); list() returns the full paths under a prefix, sorted.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace apilake {

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  virtual void put(const std::string& path, const std::string& bytes) = 0;
  virtual std::optional<std::string> get(const std::string& path) = 0;
  virtual std::vector<std::string> list(const std::string& prefix) = 0;
  virtual bool exists(const std::string& path) = 0;
  virtual void remove(const std::string& path) = 0;  // no-op when absent
};

}  // namespace apilake
