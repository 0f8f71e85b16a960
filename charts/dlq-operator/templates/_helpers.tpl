{{/* The chart name, as used in labels. */}}
{{- define "dlq-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name; 63 characters at most (DNS label), and without a
repeated chart name when the release is already called after it.
*/}}
{{- define "dlq-operator.fullname" -}}
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

{{- define "dlq-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "dlq-operator.labels" -}}
helm.sh/chart: {{ include "dlq-operator.chart" . }}
{{ include "dlq-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: dlq-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the operator pod. Retry workers carry app.kubernetes.io/name
dlq-operator too, with their DLQ's name as instance, so the component label keeps a
worker of a DLQ named like the release out of the operator's selector and Service.
*/}}
{{- define "dlq-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dlq-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "dlq-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dlq-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image reference: repository@digest, or repository:tag. */}}
{{- define "dlq-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The retry worker image: the operator image unless workerImage says otherwise. */}}
{{- define "dlq-operator.workerImage" -}}
{{- if or .Values.workerImage.repository .Values.workerImage.tag }}
{{- $repository := default .Values.image.repository .Values.workerImage.repository }}
{{- printf "%s:%s" $repository (default (default .Chart.AppVersion .Values.image.tag) .Values.workerImage.tag) }}
{{- else }}
{{- include "dlq-operator.image" . }}
{{- end }}
{{- end }}

{{/*
Rules on namespaced resources, shared by the ClusterRole (all namespaces) and the Role of
each watched namespace, so both modes grant exactly the same.
*/}}
{{- define "dlq-operator.namespacedRules" -}}
# kopf lists and watches all three kinds and patches their metadata (finalizers); the
# operator patches annotations to nudge a reconcile. A DeadLetterQueue is read again after
# a conflicting status write, and by the ReprocessRequests that replay it.
- apiGroups: ["dlq.orion.io"]
  resources: ["deadletterqueues"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["dlq.orion.io"]
  resources: ["retrypolicies", "reprocessrequests"]
  verbs: ["list", "watch", "patch"]
# Status is a subresource of all three: written by kopf's patches (with its progress and
# last-handled configuration under status.operator), the depth monitor and the replay
# progress.
- apiGroups: ["dlq.orion.io"]
  resources: ["deadletterqueues/status", "retrypolicies/status", "reprocessrequests/status"]
  verbs: ["patch"]
# Worker Deployments carry an owner reference to their DeadLetterQueue with
# blockOwnerDeletion; clusters with the OwnerReferencesPermissionEnforcement admission
# plugin (e.g. OpenShift) require update on the owner's finalizers for that.
- apiGroups: ["dlq.orion.io"]
  resources: ["deadletterqueues/finalizers"]
  verbs: ["update"]
# The retry worker Deployments: read before applying, created, patched, deleted, and
# watched so that a DLQ's WorkerReady follows its worker's availability.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- if .Values.networkPolicy.enabled }}
# Each retry worker's NetworkPolicy, kept next to its Deployment (networkPolicy.enabled).
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "update", "delete"]
{{- end }}
# A worker's pods are listed (never changed) to tell why it is not available, e.g.
# ImagePullBackOff or CrashLoopBackOff.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# Events on the three kinds, posted by kopf and by the operator (core v1 Events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* The DLQ_ALERT_SINKS JSON: Secret-held URLs become files under /etc/dlq-operator/sinks. */}}
{{- define "dlq-operator.alertSinks" -}}
{{- $sinks := list }}
{{- range $index, $sink := .Values.alertSinks }}
{{- $entry := dict "kind" $sink.kind }}
{{- if $sink.name }}{{ $_ := set $entry "name" $sink.name }}{{ end }}
{{- if $sink.existingSecret }}
{{- $_ := set $entry "url_file" (printf "/etc/dlq-operator/sinks/%d/%s" $index (default "url" $sink.key)) }}
{{- else }}
{{- $_ := set $entry "url" $sink.url }}
{{- end }}
{{- if $sink.timeoutSeconds }}{{ $_ := set $entry "timeout_seconds" $sink.timeoutSeconds }}{{ end }}
{{- if $sink.maxAttempts }}{{ $_ := set $entry "max_attempts" $sink.maxAttempts }}{{ end }}
{{- $sinks = append $sinks $entry }}
{{- end }}
{{- toJson $sinks }}
{{- end }}
