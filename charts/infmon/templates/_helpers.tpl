{{/* Full name of the release's objects, at most 63 characters. */}}
{{- define "infmon.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "infmon.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels on every object of the chart. */}}
{{- define "infmon.labels" -}}
{{ include "infmon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "infmon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "infmon.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "infmon.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Whether the operator runs with leader election (more than one replica). */}}
{{- define "infmon.leaderElection" -}}
{{- if gt (int .Values.replicas) 1 }}true{{ end -}}
{{- end -}}

{{/*
RBAC rules, one per resource with exactly the verbs of `infmon::rbac::permissions_with(secrets)`,
one template per scope of that table (tests/tools/chart.rs checks that they agree).

Scope "watched": where the operator reads and writes for the resources. Cluster mode puts
these rules in the ClusterRole; namespaced mode in a Role per watched namespace (and in the
exporter's, where the shared exporter's ConfigMap and monitor live).
*/}}
{{- define "infmon.rules.watched" -}}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, delete, get, list, patch, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [watch]
{{- if .Values.rbac.secrets }}
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, delete, get, list, patch, watch]
{{- end }}
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [grafana.integreatly.org]
  resources: [grafanadashboards]
  verbs: [create, delete, get, list, patch, watch]
- apiGroups: [monitoring.coreos.com]
  resources: [podmonitors]
  verbs: [create, delete, get, list, patch, watch]
- apiGroups: [monitoring.coreos.com]
  resources: [prometheusrules]
  verbs: [create, delete, get, list, patch, watch]
- apiGroups: [monitoring.coreos.com]
  resources: [scrapeconfigs]
  verbs: [create, delete, get, list, patch, watch]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [create, delete, get, list, patch, watch]
- apiGroups: [monitoring.inference.dev]
  resources: [inferencemonitorings]
  verbs: [list, patch, watch]
- apiGroups: [monitoring.inference.dev]
  resources: [inferencemonitorings/finalizers]
  verbs: [update]
- apiGroups: [monitoring.inference.dev]
  resources: [inferencemonitorings/status]
  verbs: [patch]
{{- end -}}

{{/*
Scope "cluster", in both modes, read-only: pods (metadata of a DCGM exporter infmon did not
deploy, in any namespace; the pods of the resources and of the shared exporter), namespace
labels (namespaces are cluster-scoped) for Prometheus namespace selectors, CRD metadata (to
watch a generated kind as soon as its CRD is installed), and the consumers of monitors (the
Prometheus Operator's `Prometheus` and `PrometheusAgent` resources, VictoriaMetrics'
`VMAgent`s, OpenTelemetry collectors, Grafana `Alloy`s), which usually run in a namespace the
operator does not watch.
*/}}
{{- define "infmon.rules.cluster" -}}
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [monitoring.coreos.com]
  resources: [prometheuses]
  verbs: [list, watch]
- apiGroups: [monitoring.coreos.com]
  resources: [prometheusagents]
  verbs: [list, watch]
- apiGroups: [operator.victoriametrics.com]
  resources: [vmagents]
  verbs: [list, watch]
- apiGroups: [opentelemetry.io]
  resources: [opentelemetrycollectors]
  verbs: [list, watch]
- apiGroups: [collectors.grafana.com]
  resources: [alloys]
  verbs: [list, watch]
{{- end -}}

{{/* Scope "exporter namespace": the shared DCGM exporter's DaemonSet and Service, nowhere else. */}}
{{- define "infmon.rules.exporter" -}}
- apiGroups: [""]
  resources: [services]
  verbs: [create, delete, get, list, patch, watch]
- apiGroups: [apps]
  resources: [daemonsets]
  verbs: [create, delete, get, list, patch, watch]
{{- end -}}

{{/* Scope "operator namespace": the leader-election Lease, in the release namespace only. */}}
{{- define "infmon.rules.leases" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create, get, update]
{{- end -}}

{{/* The exporter's namespace: gpuExporter.namespace or the release namespace. */}}
{{- define "infmon.gpuExporterNamespace" -}}
{{- .Values.gpuExporter.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* The --gpu-exporter settings (YAML): the values, namespace defaulted, empty names left out. */}}
{{- define "infmon.gpuExporter" -}}
{{- $settings := omit .Values.gpuExporter "namespace" "priorityClassName" "runtimeClassName" -}}
{{- $_ := set $settings "namespace" (include "infmon.gpuExporterNamespace" .) -}}
{{- with .Values.gpuExporter.priorityClassName }}{{ $_ := set $settings "priorityClassName" . }}{{ end -}}
{{- with .Values.gpuExporter.runtimeClassName }}{{ $_ := set $settings "runtimeClassName" . }}{{ end -}}
{{- toYaml $settings -}}
{{- end -}}
