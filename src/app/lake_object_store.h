// Adapts the lake to bus/'s ObjectStore, so the object ledger (bus/object_ledger.h) keeps its
// manifests in the lake next to the data. Header-only: wiring code and tests include it directly.
#pragma once
#include "bus/object_store.h"
#include "lake/lake.h"

namespace apilake {

class LakeObjectStore final : public ObjectStore {
 public:
  explicit LakeObjectStore(Lake& lake) : lake_(lake) {}
  void put(const std::string& path, const std::string& bytes) override { lake_.put(path, bytes); }
  std::optional<std::string> get(const std::string& path) override { return lake_.get(path); }
  std::vector<std::string> list(const std::string& prefix) override { return lake_.list(prefix); }
  bool exists(const std::string& path) override { return lake_.exists(path); }
  void remove(const std::string& path) override { lake_.remove(path); }

 private:
  Lake& lake_;
};

}  // namespace apilake
