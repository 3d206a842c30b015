// Validates custom resources against their CRDs' schemas, with the validators the
// @kubernetes-models packages generate from the upstream CRDs (package.json pins them).
// Input (stdin): a JSON array of {source, object}. Output (stdout): a JSON array of
// {source, kind, name, errors}, one per object; an object of a kind with no model here is
// reported as unknown, never passed silently.
import { readFileSync } from "node:fs";

const MODELS = {
  "external-secrets.io/v1/ExternalSecret": "@kubernetes-models/external-secrets/external-secrets.io/v1/ExternalSecret",
  "external-secrets.io/v1/SecretStore": "@kubernetes-models/external-secrets/external-secrets.io/v1/SecretStore",
  "monitoring.coreos.com/v1/ServiceMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
  "external-secrets.io/v1/ClusterSecretStore": "@kubernetes-models/external-secrets/external-secrets.io/v1/ClusterSecretStore",
  "monitoring.coreos.com/v1/PodMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor",
  "monitoring.coreos.com/v1/PrometheusRule": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
  "argoproj.io/v1alpha1/Application": "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/Application",
  "argoproj.io/v1alpha1/ApplicationSet": "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/ApplicationSet",
  "argoproj.io/v1alpha1/AppProject": "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/AppProject",
  "argoproj.io/v1alpha1/Rollout": "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/Rollout",
  "argoproj.io/v1alpha1/AnalysisTemplate": "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate",
};

const input = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const { source, object } of input) {
  const key = `${object.apiVersion}/${object.kind}`;
  const name = object.metadata?.name ?? "";
  const module = MODELS[key];
  if (!module) {
    results.push({ source, kind: key, name, errors: [`no schema known for ${key}`] });
    continue;
  }
  const Model = Object.values(await import(module)).find((value) => typeof value === "function");
  try {
    new Model(object).validate();
    results.push({ source, kind: key, name, errors: [] });
  } catch (error) {
    const details = error.errors ?? [];
    results.push({
      source, kind: key, name,
      errors: details.length
        ? details.map((detail) => `${detail.instancePath || "/"}: ${detail.message}`)
        : [String(error.message ?? error)],
    });
  }
}
process.stdout.write(JSON.stringify(results));
