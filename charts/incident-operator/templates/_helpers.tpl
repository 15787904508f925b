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
{{- if .Values.statusPage.enabled }}
# StatusPages: the page served (statusPage.page), watched by every replica (get/list/watch).
- apiGroups: [incident.dev]
  resources: [statuspages]
  verbs: [get, list, watch]
{{- end }}
# Channels: where incidents' news goes; watched by the incident, notifications and channel
# controllers (get/list/watch).
- apiGroups: [incident.dev]
  resources: [channels]
  verbs: [get, list, watch]
# Channel status: Ready/Stalled/Delivering and delivery counts.
- apiGroups: [incident.dev]
  resources: [channels/status]
  verbs: [patch]
# On call: schedules and escalation policies, watched by the incident controller (who to page) and
# the on-call controller (their Ready condition).
- apiGroups: [incident.dev]
  resources: [oncallschedules, escalationpolicies]
  verbs: [get, list, watch]
# Their status: Ready/Stalled naming what they reference that does not exist.
- apiGroups: [incident.dev]
  resources: [oncallschedules/status, escalationpolicies/status]
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
# Deployments, StatefulSets, DaemonSets: detection (Deployments) and rollout verification watch
# them; remediation (rollback, restart, scale) patches them - the only workload writes the operator
# makes.
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, watch, patch]
# ReplicaSets: rollout history for rollback and evidence (list), metadata watch by the detector.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list, watch]
# ControllerRevisions: a StatefulSet's or DaemonSet's rollout history, listed for a rollback.
- apiGroups: [apps]
  resources: [controllerrevisions]
  verbs: [list]
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
# as Events (create); past ten of one reason on one object in ten minutes, one combined Event counts
# the rest (get, update); Warning Events are watched as detection signals and evidence, and listed by
# runbook collect steps (list/watch).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [get, list, watch, create, update]
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
{{- if .Values.admission.enabled }}
# The trust policies and their bindings: watched so readiness fails while they are not in force.
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingadmissionpolicies, validatingadmissionpolicybindings]
  verbs: [get, list, watch]
{{- end }}
{{- if .Values.statusPage.enabled }}
# The board's reader checks (http/board.rs): is the bearer token valid (TokenReview), may its user
# read the namespace's Incidents (SubjectAccessReview), as kube-rbac-proxy asks.
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
- apiGroups: [authorization.k8s.io]
  resources: [subjectaccessreviews]
  verbs: [create]
{{- end }}
{{- end }}

{{/* The Secret holding the alert receiver's bearer token. */}}
{{- define "incident-operator.alertsTokenSecret" -}}
{{- if .Values.alerts.tokenSecret.create }}
{{- default (printf "%s-alerts-token" (include "incident-operator.fullname" .)) .Values.alerts.tokenSecret.name }}
{{- else }}
{{- required "alerts.enabled needs a bearer token: alerts.tokenSecret.name (an existing Secret in the release namespace, e.g. `kubectl create secret generic incident-operator-alerts --from-literal=token=$(openssl rand -hex 32)`) or alerts.tokenSecret.create=true" .Values.alerts.tokenSecret.name }}
{{- end }}
{{- end }}

{{/* Where the token Secret is mounted (never inside the ConfigMap's mount) and the file the flag names. */}}
{{- define "incident-operator.alertsTokenDir" -}}
/var/run/secrets/incident-operator/alerts
{{- end }}
{{- define "incident-operator.alertsTokenFile" -}}
{{- printf "%s/%s" (include "incident-operator.alertsTokenDir" .) .Values.alerts.tokenSecret.key }}
{{- end }}

{{/* A namespace-scoped install needs its namespace: without it the Role cannot be created and the
operator would run with no rights. Checked only against a cluster (`helm template` sees no objects,
not even kube-system). */}}
{{- define "incident-operator.namespaceChecks" -}}
{{- with .Values.operator.watchNamespace }}
{{- if and (lookup "v1" "Namespace" "" "kube-system") (not (lookup "v1" "Namespace" "" .)) }}
{{- fail (printf "operator.watchNamespace %q does not exist: create it first (kubectl create namespace %s); the operator's Role is granted there" . .) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The receiver's settings that cannot work, refused at render time with the reason. */}}
{{- define "incident-operator.alertsChecks" -}}
{{- if .Values.alerts.enabled }}
{{- if eq (int .Values.alerts.port) (int .Values.operator.port) }}
{{- fail "alerts.port must differ from operator.port: the receiver never shares the metrics port" }}
{{- end }}
{{- if not .Values.alerts.tokenSecret.key }}
{{- fail "alerts.tokenSecret.key must name the Secret's key holding the token" }}
{{- end }}
{{- if lt (int64 .Values.alerts.maxBody) 1024 }}
{{- fail "alerts.maxBody must be at least 1024" }}
{{- end }}
{{- if lt (int64 .Values.alerts.maxAlerts) 1 }}
{{- fail "alerts.maxAlerts must be at least 1" }}
{{- end }}
{{- with .Values.operator.watchNamespace }}
{{- $watch := . }}
{{- if and $.Values.alerts.namespace (ne $.Values.alerts.namespace $watch) }}
{{- fail (printf "alerts.namespace %q is outside operator.watchNamespace %q: the operator could not write or follow those incidents" $.Values.alerts.namespace $watch) }}
{{- end }}
{{- range $.Values.alerts.namespaces }}
{{- if ne . $watch }}
{{- fail (printf "alerts.namespaces lists %q, outside operator.watchNamespace %q: the operator could not write or follow those incidents" . $watch) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.alertsIngress) }}
{{- fail "networkPolicy.alertsIngress must name who may post alerts (Alertmanager's pods, NetworkPolicyPeer list) when alerts.enabled and networkPolicy.enabled" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The status page's settings that cannot work, refused at render time with the reason. */}}
{{- define "incident-operator.statusPageChecks" -}}
{{- if .Values.statusPage.enabled }}
{{- if not .Values.statusPage.page }}
{{- fail "statusPage.enabled needs statusPage.page: the StatusPage to serve, as NAMESPACE/NAME" }}
{{- end }}
{{- if or (eq (int .Values.statusPage.port) (int .Values.operator.port)) (and .Values.alerts.enabled (eq (int .Values.statusPage.port) (int .Values.alerts.port))) }}
{{- fail "statusPage.port must differ from operator.port and alerts.port: the page never shares a port" }}
{{- end }}
{{- with .Values.operator.watchNamespace }}
{{- if ne . (first (splitList "/" $.Values.statusPage.page)) }}
{{- fail (printf "statusPage.page %s is outside operator.watchNamespace %s" $.Values.statusPage.page .) }}
{{- end }}
{{- end }}
{{- if and .Values.statusPage.ingress.enabled (not .Values.statusPage.ingress.host) }}
{{- fail "statusPage.ingress.enabled needs statusPage.ingress.host" }}
{{- end }}
{{- end }}
{{- end }}
