{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "incident-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "incident-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "incident-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "incident-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: incident-operator
{{- end }}

{{/* Labels selecting the operator pods. */}}
{{- define "incident-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "incident-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "incident-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "incident-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "incident-operator.leaseName" -}}
{{- default (include "incident-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "incident-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Rules on namespaced resources. A ClusterRole when the operator watches all namespaces, a Role in
operator.watchNamespace otherwise. Every rule is something the operator's code calls; nothing else.
*/}}
{{- define "incident-operator.namespacedRules" -}}
# Incidents: the lifecycle controller and the detector watch them (get/list/watch); the detector opens
# detected incidents by server-side apply (create, patch) and annotates them; runbooks patch the
# actions and severity of the incident they follow (patch). Never update or delete.
- apiGroups: [incident.dev]
  resources: [incidents]
  verbs: [get, list, watch, create, patch]
# Incident status: timeline, clocks, action and runbook progress, written by server-side apply.
- apiGroups: [incident.dev]
  resources: [incidents/status]
  verbs: [patch]
# Runbooks: matched to incidents and validated (get/list/watch).
- apiGroups: [incident.dev]
  resources: [runbooks]
  verbs: [get, list, watch]
# Runbook status: Ready/Stalled and matched counts.
- apiGroups: [incident.dev]
  resources: [runbooks/status]
  verbs: [patch]
# Channels: where incidents' news goes; watched by the incident, notifications and channel
# controllers (get/list/watch).
- apiGroups: [incident.dev]
  resources: [channels]
  verbs: [get, list, watch]
# Channel status: Ready/Stalled/Delivering and delivery counts.
- apiGroups: [incident.dev]
  resources: [channels/status]
  verbs: [patch]
# Pods: the detector watches them for crash loops, image pulls, OOM kills; runbook collect steps list
# them; an incident's affected Pod is read for its metadata (get).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# The crashed container's previous log, copied into evidence (detection.logTailLines; 0 never reads).
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# Deployments: detection and rollout verification watch them; remediation (rollback, restart, scale)
# patches them - the only workload writes the operator makes.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, patch]
# ReplicaSets: rollout history for rollback and evidence (list), metadata watch by the detector.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list, watch]
# Affected objects of other kinds: only their metadata is read, to link the incident to them.
- apiGroups: [apps]
  resources: [statefulsets, daemonsets]
  verbs: [get]
- apiGroups: [batch]
  resources: [jobs, cronjobs]
  verbs: [get]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get]
- apiGroups: [""]
  resources: [services, persistentvolumeclaims]
  verbs: [get]
# events.k8s.io Events: the incident timeline, channel readiness and given-up messages are published
# as Events (create); Warning Events are watched as detection signals and evidence, and listed by
# runbook collect steps (list/watch).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [list, watch, create]
{{- end }}

{{/* Rules on cluster-scoped resources: always a ClusterRole. */}}
{{- define "incident-operator.clusterRules" -}}
# Nodes: watched for NotReady (detection); an incident's affected Node is read for its metadata.
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
# Namespaces: metadata watched to apply detection.namespaceSelector; an affected Namespace is read.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end }}
