// Validates deploy/kubernetes for deploy/validate.sh (which installs the npm packages this
// imports into a cache outside the repository and runs a copy of this file from there).
//
//   node validate-manifests.mjs --kube-dir DIR --repo DIR [--rendered FILE] [--hotswap BIN]
//
// Every *.yaml under DIR is checked: the objects `kustomize build DIR` produces (--rendered;
// without it, the files the kustomization.yaml files list), and every other manifest there
// (examples and one-off tools) on its own. Per object:
//   1. the Kubernetes API schema: kubernetes-models (core API, 1.34-era) and
//      @kubernetes-models/gateway-api; for the InferencePool / InferenceObjective CRDs, the
//      schemas in DIR/schemas (no package ships those CRDs);
//   2. unknown fields, which JSON Schema validation of the Kubernetes schemas lets through and
//      the API server rejects (kubectl's strict field validation): TypeScript's excess-property
//      check against the same packages' type declarations;
//   3. what ties the objects to each other and to the server: selectors and ports, references,
//      probes, grace period vs drain timeout, the ConfigMap's server.json vs configs/server.json
//      and `hotswap serve`, the endpoint picker's metric names vs server/metrics/metrics.cc,
//      Pod Security "restricted".
// Prints one line per check and "N passed, N failed"; exits 1 if anything failed.

import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import Ajv from "ajv";

// This file runs from the cache directory that holds node_modules; objects.ts is written
// below it so that its imports resolve there.
const here = path.dirname(fileURLToPath(import.meta.url));
const args = { work: path.join(here, "check") };
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
for (const k of ["kube-dir", "repo"]) if (!args[k]) throw new Error(`--${k} is required`);
const kubeDir = path.resolve(args["kube-dir"]);
const repo = path.resolve(args.repo);

let passed = 0;
let failed = 0;
const pass = (what) => { passed++; console.log(`  ok    ${what}`); };
const fail = (what, why) => { failed++; console.log(`  FAIL  ${what}\n          ${String(why).replace(/\n/g, "\n          ")}`); };
const check = (what, cond, why) => (cond ? pass(what) : fail(what, why));
const rel = (p) => path.relative(repo, p);

// ---------------------------------------------------------------- loading
function loadDocs(file, label) {
  const text = fs.readFileSync(file, "utf8");
  const out = [];
  YAML.parseAllDocuments(text).forEach((doc, i) => {
    if (doc.errors.length) { fail(`${label} document ${i + 1}: YAML`, doc.errors.map(String).join("\n")); return; }
    const obj = doc.toJS();
    if (obj !== null && obj !== undefined) out.push({ obj, source: label });
  });
  return out;
}

const yamlFiles = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (/\.ya?ml$/.test(e.name)) yamlFiles.push(p);
  }
})(kubeDir);

// Files the kustomizations pull in (resources: files or directories with a kustomization.yaml).
const kustomized = new Set();
const kustomizations = new Set();
(function resources(dir) {
  const kfile = ["kustomization.yaml", "kustomization.yml", "Kustomization"].map((n) => path.join(dir, n)).find((p) => fs.existsSync(p));
  if (!kfile) throw new Error(`${rel(dir)}: no kustomization.yaml`);
  kustomizations.add(kfile);
  const k = YAML.parse(fs.readFileSync(kfile, "utf8"));
  for (const field of ["configMapGenerator", "secretGenerator", "patches", "components"]) {
    if (k[field]) fail(`${rel(kfile)}`, `${field}: not supported by this validator's file walk; extend deploy/validate-manifests.mjs`);
  }
  for (const r of k.resources || []) {
    const p = path.resolve(dir, r);
    if (fs.statSync(p).isDirectory()) resources(p);
    else kustomized.add(p);
  }
})(kubeDir);

const applied = [];
if (args.rendered) {
  applied.push(...loadDocs(args.rendered, "kustomize build " + rel(kubeDir)));
} else {
  console.log("  note  no kustomize/kubectl: validating the listed files as they are (namespace and image not applied)");
  for (const f of kustomized) applied.push(...loadDocs(f, rel(f)));
}
const extras = [];
for (const f of yamlFiles) {
  if (kustomized.has(f) || kustomizations.has(f)) continue;
  extras.push(...loadDocs(f, rel(f)));
}
const all = [...applied, ...extras];
const id = (d) => `${d.obj.apiVersion} ${d.obj.kind} ${d.obj.metadata?.namespace ? d.obj.metadata.namespace + "/" : ""}${d.obj.metadata?.name} (${d.source})`;

// ---------------------------------------------------------------- 1. schemas
console.log("Kubernetes API schemas:");
// strictRequired off: the CEL-like if/then names a property declared beside it, not inside it.
const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
const crdSchemas = {
  "inference.networking.k8s.io/v1 InferencePool": "inferencepool-v1.schema.json",
  "llm-d.ai/v1alpha2 InferenceObjective": "inferenceobjective-v1alpha2.schema.json",
};
function modelSpecifier(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "") return `kubernetes-models/${version}/${kind}`;
  if (group === "gateway.networking.k8s.io" || group === "gateway.networking.x-k8s.io")
    return `@kubernetes-models/gateway-api/${group}/${version}/${kind}`;
  return `kubernetes-models/${group}/${version}/${kind}`;
}
const typed = []; // objects for the TypeScript pass
for (const d of all) {
  const { apiVersion, kind } = d.obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string") { fail(id(d), "apiVersion and kind are required"); continue; }
  const crd = crdSchemas[`${apiVersion} ${kind}`];
  if (crd) {
    let validate;
    try { validate = ajv.compile(JSON.parse(fs.readFileSync(path.join(kubeDir, "schemas", crd), "utf8"))); } catch (e) { fail(`schemas/${crd}`, e.message); continue; }
    check(`${id(d)} [schemas/${crd}]`, validate(d.obj),
      (validate.errors || []).map((e) => `${e.instancePath || "/"} ${e.message}${e.params?.additionalProperty ? `: '${e.params.additionalProperty}'` : ""}`).join("\n"));
    continue;
  }
  const spec = modelSpecifier(apiVersion, kind);
  let mod;
  try { mod = await import(spec); } catch (e) { fail(id(d), `no schema for ${apiVersion} ${kind} (${spec}): ${e.code || e.message}`); continue; }
  try { new mod[kind](d.obj).validate(); pass(id(d)); } catch (e) { fail(id(d), e.message); }
  typed.push({ d, spec, kind });
}

// ---------------------------------------------------------------- 2. unknown fields
console.log("Unknown fields (TypeScript excess-property check against the same packages):");
{
  const lines = [];
  const imports = new Map();
  const lineOf = new Map();
  typed.forEach(({ spec, kind }) => imports.set(spec, `import type { I${kind} } from "${spec}";`));
  lines.push(...imports.values());
  typed.forEach((t, i) => { lineOf.set(lines.length + 1, i); lines.push(`export const o${i}: I${t.kind} = ${JSON.stringify(t.d.obj)};`); });
  fs.mkdirSync(args.work, { recursive: true });
  fs.writeFileSync(path.join(args.work, "objects.ts"), lines.join("\n") + "\n");
  fs.writeFileSync(path.join(args.work, "tsconfig.json"), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", skipLibCheck: true, types: [] },
    files: ["objects.ts"],
  }));
  const tsc = spawnSync(process.execPath, [path.join(here, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(args.work, "tsconfig.json")], { encoding: "utf8" });
  const errors = new Map();
  for (const line of (tsc.stdout + tsc.stderr).split("\n")) {
    const m = /objects\.ts\((\d+),\d+\): error (TS\d+: .*)/.exec(line);
    if (!m) { if (line.trim() && tsc.status !== 0 && !/^\s/.test(line)) errors.set(-1, (errors.get(-1) || []).concat(line)); continue; }
    const i = lineOf.has(Number(m[1])) ? lineOf.get(Number(m[1])) : -1;
    errors.set(i, (errors.get(i) || []).concat(m[2]));
  }
  if (errors.has(-1)) fail("TypeScript check itself", errors.get(-1).join("\n"));
  typed.forEach((t, i) => check(id(t.d), !errors.has(i), (errors.get(i) || []).join("\n")));
}

// ---------------------------------------------------------------- 3. consistency
console.log("Consistency (objects with each other, with the server and its config):");
const find = (set, kind, name) => set.find((d) => d.obj.kind === kind && (name === undefined || d.obj.metadata?.name === name));
const matches = (selector, labels) => Object.entries(selector || {}).every(([k, v]) => labels?.[k] === v) && Object.keys(selector || {}).length > 0;
const podSpecOf = (o) => (o.kind === "Pod" ? o.spec : o.kind === "Job" ? o.spec?.template?.spec : o.spec?.template?.spec);

const serverConfigPath = path.join(repo, "configs", "server.json");
const dep = find(applied, "Deployment", "hotswap");
const cm = find(applied, "ConfigMap", "hotswap-config");
const svc = find(applied, "Service", "hotswap");
let serveFlags = null;
if (args.hotswap) {
  const help = spawnSync(args.hotswap, ["serve", "--help"], { encoding: "utf8" });
  serveFlags = new Set([...help.stdout.matchAll(/^\s+(--[a-z-]+)/gm)].map((m) => m[1]));
}

// The ConfigMap's server.json.
let drainMs = null;
let pods = null;
if (!cm || !dep || !svc) {
  fail("the server objects", "expected Deployment, ConfigMap hotswap-config and Service hotswap in the kustomization");
} else {
  const text = cm.obj.data?.["server.json"];
  let conf = null;
  try { conf = JSON.parse(text); pass("ConfigMap hotswap-config: server.json is JSON"); } catch (e) { fail("ConfigMap hotswap-config: server.json is JSON", e.message); }
  if (conf) {
    const keys = (o, p = "") => Object.entries(o).flatMap(([k, v]) => (k.startsWith("_") ? [] : v && typeof v === "object" && !Array.isArray(v) && p + k !== "default_attention" ? keys(v, `${p}${k}.`) : [p + k]));
    const ref = new Set(keys(JSON.parse(fs.readFileSync(serverConfigPath, "utf8"))));
    const got = new Set(keys(conf));
    check("ConfigMap hotswap-config: no api_key (it would override $HOTSWAP_API_KEY from the Secret)", !got.has("api_key"), "remove api_key from server.json");
    ref.delete("api_key");
    const missing = [...ref].filter((k) => !got.has(k));
    const extra = [...got].filter((k) => !ref.has(k) && k !== "api_key");
    check("ConfigMap hotswap-config: the settings of configs/server.json, no more, no less", !missing.length && !extra.length, `missing: ${missing.join(", ") || "-"}; not in configs/server.json: ${extra.join(", ") || "-"}`);
    drainMs = conf.timeouts?.drain_ms;
    if (args.hotswap) {
      const tmp = path.join(args.work, "server.json");
      fs.writeFileSync(tmp, text);
      const r = spawnSync(args.hotswap, ["serve", "--config", tmp, "--help"], { encoding: "utf8" });
      check("ConfigMap hotswap-config: `hotswap serve --config server.json` accepts it", r.status === 0, r.stderr.trim());
    } else {
      console.log("  skip  ConfigMap hotswap-config against `hotswap serve` (no built binary)");
    }
    pods = dep.obj.spec?.template;
    const c = pods?.spec?.containers?.find((x) => x.name === "hotswap");
    const cpu = c?.resources?.limits?.cpu;
    if (cpu !== undefined && /^\d+$/.test(String(cpu))) {
      check(`engine.threads (${conf.engine?.threads}) = the container's CPU limit (${cpu})`, Number(conf.engine?.threads) === Number(cpu), "libgomp would size its pool from the node's CPUs, not the quota");
    }
  }
  const spec = pods?.spec;
  const c = spec?.containers?.find((x) => x.name === "hotswap");
  if (!c) fail("Deployment hotswap", "no container named hotswap");
  else {
    const probe = (p) => p?.httpGet?.path;
    check("probes: startup /ready, readiness /ready, liveness /health", probe(c.startupProbe) === "/ready" && probe(c.readinessProbe) === "/ready" && probe(c.livenessProbe) === "/health",
      `startup ${probe(c.startupProbe)}, readiness ${probe(c.readinessProbe)}, liveness ${probe(c.livenessProbe)}`);
    const portNames = new Map((c.ports || []).map((p) => [p.name, p.containerPort]));
    for (const p of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
      if (p?.httpGet && typeof p.httpGet.port === "string" && !portNames.has(p.httpGet.port)) fail("probe port", `no container port named ${p.httpGet.port}`);
    }
    const pre = c.lifecycle?.preStop;
    const sleep = pre?.sleep?.seconds ?? (pre?.exec?.command?.[0]?.endsWith("sleep") ? Number(pre.exec.command[1]) : 0);
    const grace = spec.terminationGracePeriodSeconds ?? 30;
    if (drainMs !== null && drainMs !== undefined) {
      const need = sleep + drainMs / 1000 + 4;
      check(`terminationGracePeriodSeconds ${grace} > preStop ${sleep} s + drain_ms ${drainMs / 1000} s + 4 s (cancel grace, teardown)`, grace > need, `raise terminationGracePeriodSeconds above ${need}`);
    }
    check("HOTSWAP_API_KEY comes from a Secret", (c.env || []).some((e) => e.name === "HOTSWAP_API_KEY" && e.valueFrom?.secretKeyRef), "env HOTSWAP_API_KEY valueFrom.secretKeyRef expected");
    if (serveFlags) {
      const unknown = (c.args || []).filter((a) => a.startsWith("--")).map((a) => a.split("=")[0]).filter((f) => !serveFlags.has(f) && f !== "--config");
      check("container args are `hotswap serve` flags", !unknown.length, `unknown: ${unknown.join(" ")}`);
    }
    for (const e of c.env || []) {
      const ref = e.valueFrom?.secretKeyRef;
      if (!ref) continue;
      const s = find(all, "Secret", ref.name);
      check(`Secret ${ref.name} (key ${ref.key}) is defined (server/secret.example.yaml documents it)`, s && (s.obj.stringData?.[ref.key] !== undefined || s.obj.data?.[ref.key] !== undefined), "no such Secret/key among the manifests");
    }
    for (const v of spec.volumes || []) {
      if (v.configMap) check(`volume ${v.name}: ConfigMap ${v.configMap.name} exists`, !!find(applied, "ConfigMap", v.configMap.name), "missing");
      if (v.persistentVolumeClaim) check(`volume ${v.name}: PersistentVolumeClaim ${v.persistentVolumeClaim.claimName} exists`, !!find(applied, "PersistentVolumeClaim", v.persistentVolumeClaim.claimName), "missing");
    }
    const mounts = new Set((c.volumeMounts || []).map((m) => m.mountPath));
    check("mounts: /models (read-only), /adapters, /etc/hotswap, /var/cache/hotswap, /tmp",
      ["/models", "/adapters", "/etc/hotswap", "/var/cache/hotswap", "/tmp"].every((m) => mounts.has(m)) && c.volumeMounts.find((m) => m.mountPath === "/models")?.readOnly === true, [...mounts].join(" "));
    const adaptersClaim = spec.volumes?.find((v) => v.name === c.volumeMounts?.find((m) => m.mountPath === "/adapters")?.name)?.persistentVolumeClaim?.claimName;
    const pvc = find(applied, "PersistentVolumeClaim", adaptersClaim);
    check("the adapters claim is ReadWriteMany (shared by the replicas)", pvc?.obj.spec?.accessModes?.includes("ReadWriteMany"), `accessModes ${pvc?.obj.spec?.accessModes}`);
    // Service -> pods.
    check("Service hotswap selects the Deployment's pods", matches(svc.obj.spec?.selector, pods.metadata?.labels), JSON.stringify(svc.obj.spec?.selector));
    for (const p of svc.obj.spec?.ports || []) {
      const ok = typeof p.targetPort === "string" ? portNames.has(p.targetPort) : [...portNames.values()].includes(p.targetPort ?? p.port);
      check(`Service hotswap port ${p.port} -> container port ${p.targetPort}`, ok, "no such container port");
    }
    const pdb = find(applied, "PodDisruptionBudget");
    if (pdb) check("PodDisruptionBudget selects the Deployment's pods", matches(pdb.obj.spec?.selector?.matchLabels, pods.metadata?.labels), "selector mismatch");
    check("Deployment selector matches its pod template", matches(dep.obj.spec?.selector?.matchLabels, pods.metadata?.labels), "selector mismatch");
  }
}

// Inference gateway objects.
const pool = find(applied, "InferencePool");
if (pool && pods) {
  const p = pool.obj.spec;
  check(`InferencePool ${pool.obj.metadata.name} selects the Hotswap pods`, matches(p.selector?.matchLabels, pods.metadata?.labels), JSON.stringify(p.selector?.matchLabels));
  const ports = pods.spec.containers.flatMap((c) => (c.ports || []).map((x) => x.containerPort));
  check("InferencePool targetPorts are container ports", p.targetPorts.every((t) => ports.includes(t.number)), `targetPorts ${JSON.stringify(p.targetPorts)} vs ${ports}`);
  const eppSvc = find(applied, "Service", p.endpointPickerRef?.name);
  check(`endpointPickerRef -> Service ${p.endpointPickerRef?.name} port ${p.endpointPickerRef?.port?.number}`, eppSvc && (eppSvc.obj.spec.ports || []).some((x) => x.port === p.endpointPickerRef?.port?.number), "no such Service/port");
  const eppDep = eppSvc && applied.find((d) => d.obj.kind === "Deployment" && matches(eppSvc.obj.spec.selector, d.obj.spec?.template?.metadata?.labels));
  if (!eppDep) fail("endpoint picker Deployment", `no Deployment behind Service ${p.endpointPickerRef?.name}`);
  else {
    const a = eppDep.obj.spec.template.spec.containers[0].args || [];
    check("the endpoint picker watches this pool (--pool-name)", a[a.indexOf("--pool-name") + 1] === pool.obj.metadata.name, `--pool-name ${a[a.indexOf("--pool-name") + 1]}`);
    const cfgFile = a[a.indexOf("--config-file") + 1] || "";
    const vol = eppDep.obj.spec.template.spec.volumes?.find((v) => v.configMap);
    const eppCm = vol && find(applied, "ConfigMap", vol.configMap.name);
    const cfgText = eppCm?.obj.data?.[path.basename(cfgFile)];
    if (!cfgText) fail("endpoint picker config", `ConfigMap key ${path.basename(cfgFile)} not found`);
    else {
      const cfg = YAML.parse(cfgText);
      const engine = pods.metadata?.labels?.["llm-d.ai/engine-type"];
      const extractor = (cfg.plugins || []).find((x) => x.type === "core-metrics-extractor");
      const ec = extractor?.parameters?.engineConfigs?.find((e) => e.name === engine);
      check(`endpoint picker has an engine config for llm-d.ai/engine-type=${engine}`, !!ec, "engineConfigs has no entry for the pods' engine label");
      const metricsSrc = fs.readFileSync(path.join(repo, "server", "metrics", "metrics.cc"), "utf8");
      const exported = new Set(metricsSrc.match(/(?:hotswap_|vllm:)[a-z_]+/g));
      for (const k of ["queuedRequestsSpec", "runningRequestsSpec", "kvUsageSpec", "loraSpec"])
        check(`endpoint picker reads the model-server protocol's ${k} (docs/metrics.md)`, !!ec?.[k], "empty: the picker disables what needs it");
      for (const [k, v] of Object.entries(ec || {})) {
        if (!k.endsWith("Spec") || !v) continue;
        const name = String(v).split("{")[0];
        check(`endpoint picker ${k} = ${v} is a metric the server exports (server/metrics/metrics.cc)`, exported.has(name), "no such metric");
      }
      const refs = new Set((cfg.schedulingProfiles || []).flatMap((s) => s.plugins.map((x) => x.pluginRef)));
      const declared = new Set((cfg.plugins || []).map((x) => x.name || x.type));
      check("endpoint picker profile refers to declared plugins", [...refs].every((r) => declared.has(r)), `undeclared: ${[...refs].filter((r) => !declared.has(r))}`);
    }
  }
  for (const o of applied.filter((d) => d.obj.kind === "InferenceObjective")) {
    check(`InferenceObjective ${o.obj.metadata.name} -> InferencePool ${o.obj.spec.poolRef.name}`, !!find(applied, "InferencePool", o.obj.spec.poolRef.name), "no such pool");
  }
  for (const r of applied.filter((d) => d.obj.kind === "HTTPRoute")) {
    for (const b of (r.obj.spec.rules || []).flatMap((x) => x.backendRefs || [])) {
      const kind = b.kind || "Service";
      const target = find(applied, kind, b.name);
      const ok = target && (kind !== "Service" || (target.obj.spec.ports || []).some((x) => x.port === b.port));
      check(`HTTPRoute ${r.obj.metadata.name} -> ${kind} ${b.name}${b.port ? ":" + b.port : ""}`, ok, "no such backend");
    }
  }
}

// Namespaces, RBAC subjects, Pod Security "restricted".
if (args.rendered) {
  const ns = find(applied, "Namespace")?.obj.metadata.name;
  const stray = applied.filter((d) => d.obj.kind !== "Namespace" && d.obj.metadata?.namespace !== ns);
  check(`every object is in namespace ${ns}`, ns && !stray.length, stray.map(id).join("\n"));
}
for (const rb of all.filter((d) => d.obj.kind === "RoleBinding")) {
  const bad = (rb.obj.subjects || []).filter((s) => s.kind === "ServiceAccount" && !s.namespace);
  check(`RoleBinding ${rb.obj.metadata.name}: ServiceAccount subjects name their namespace`, !bad.length, "the API server requires subjects[].namespace for ServiceAccount");
}
for (const d of all.filter((x) => ["Deployment", "Job", "Pod"].includes(x.obj.kind))) {
  const spec = podSpecOf(d.obj);
  const problems = [];
  for (const c of [...(spec.initContainers || []), ...(spec.containers || [])]) {
    const sc = c.securityContext || {};
    if (!(sc.runAsNonRoot ?? spec.securityContext?.runAsNonRoot)) problems.push(`${c.name}: runAsNonRoot`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${c.name}: allowPrivilegeEscalation: false`);
    if (!(sc.capabilities?.drop || []).includes("ALL")) problems.push(`${c.name}: capabilities.drop [ALL]`);
    const sp = (sc.seccompProfile || spec.securityContext?.seccompProfile)?.type;
    if (sp !== "RuntimeDefault" && sp !== "Localhost") problems.push(`${c.name}: seccompProfile RuntimeDefault`);
    if (!sc.readOnlyRootFilesystem) problems.push(`${c.name}: readOnlyRootFilesystem (this project's rule, not PSA's)`);
  }
  check(`${d.obj.kind} ${d.obj.metadata.name}: Pod Security "restricted"`, !problems.length, problems.join("\n"));
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
