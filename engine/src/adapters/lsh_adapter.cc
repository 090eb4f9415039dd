#include "adapters/lsh_adapter.h"

#include <nlohmann/json.hpp>

namespace hotswap {

std::string lsh_adapter_description(const LshAdapter& a) {
  return std::to_string(a.num_layers) + " layers, projection [" + std::to_string(a.rows) + ", " +
         std::to_string(a.columns) + "] per layer (lsh_l * lsh_k = " + std::to_string(a.columns) + ")";
}

std::string lsh_parameters_json(const LshAdapter& a) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["layers"] = a.num_layers;
  j["rows"] = a.rows;
  j["columns"] = a.columns;
  return j.dump();
}

}  // namespace hotswap
