#include "handlers/health.h"

#include <ctime>

#include "api/json_codec.h"
#include "api/status_to_http.h"

namespace hotswap::server {

std::string served_model_name(const HandlerContext& context) {
  if (!context.config->served_model_name.empty()) return context.config->served_model_name;
  const Engine* engine = context.state->engine();
  return engine ? engine->model_info().id : "";
}

HttpResponse handle_health(const HandlerContext&) {
  v1::HealthStatus health;
  health.set_status("ok");
  return {200, "application/json", to_json(health), {}, {}};
}

HttpResponse handle_ready(const HandlerContext& context) {
  const Phase phase = context.state->phase();
  v1::HealthStatus health;
  health.set_status(phase_name(phase));
  HttpResponse response{phase == Phase::kReady ? 200 : 503, "application/json", to_json(health), {}, {}};
  if (phase != Phase::kReady) response.headers.emplace_back("Retry-After", std::to_string(context.config->retry_after_s));
  return response;
}

HttpResponse handle_metrics(const HandlerContext& context) {
  const Engine* engine = context.state->engine();
  std::optional<EngineStats> stats;
  if (engine) stats = engine->stats();
  ServerGauges gauges;
  gauges.ready = context.state->phase() == Phase::kReady;
  gauges.draining = context.state->phase() == Phase::kDraining;
  gauges.open_connections = context.state->connections.open();
  gauges.active_generations = context.state->active_generations.load();
  if (engine) {
    const AdapterStats adapters = engine->adapter_stats();
    gauges.adapters_resident = adapters.resident;
    gauges.adapter_loads_total = adapters.loads_total;
  }
  return {200, "text/plain; version=0.0.4; charset=utf-8", context.metrics->render(stats, gauges), {}, {}};
}

HttpResponse handle_models(const HandlerContext& context) {
  const Engine* engine = context.state->engine();
  if (!engine) return error_response(api_error_from_status(Status::unavailable("the model is still loading")),
                                     context.config->retry_after_s);
  static const int64_t kStarted = static_cast<int64_t>(std::time(nullptr));
  v1::ModelList list;
  list.set_object("list");
  v1::ModelCard* card = list.add_data();
  const std::string id = served_model_name(context);
  card->set_id(id);
  card->set_object("model");
  card->set_created(kStarted);
  card->set_owned_by("hotswap");
  card->set_root(engine->model_info().id);
  card->set_max_model_len(engine->model_info().max_position_embeddings);
  // Every uploaded adapter is a model too (vLLM style): `model: "<adapter>"` selects it.
  for (const AdapterInfo& adapter : engine->list_adapters()) {
    v1::ModelCard* entry = list.add_data();
    entry->set_id(adapter.name);
    entry->set_object("model");
    entry->set_created(adapter.created);
    entry->set_owned_by("hotswap");
    entry->set_root(engine->model_info().id);
    entry->set_parent(id);
    entry->set_max_model_len(engine->model_info().max_position_embeddings);
  }
  return {200, "application/json", to_json(list), {}, {}};
}

}  // namespace hotswap::server
