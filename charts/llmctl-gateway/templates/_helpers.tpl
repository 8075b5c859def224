{{/* Chart name, overridable. */}}
{{- define "llmctl-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless one already contains the other. */}}
{{- define "llmctl-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else if hasPrefix .Release.Name $name }}
{{- /* release "llmctl" (the default) names things llmctl-gateway, not llmctl-llmctl-gateway */}}
{{- $name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "llmctl-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "llmctl-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llmctl
{{- end }}

{{/* Selector labels of one component: call with (list . "gateway"). */}}
{{- define "llmctl-gateway.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "llmctl-gateway.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Name of one component's objects: call with (list . "postgresql"). */}}
{{- define "llmctl-gateway.componentName" -}}
{{- printf "%s-%s" (include "llmctl-gateway.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding every generated or supplied credential. */}}
{{- define "llmctl-gateway.secretName" -}}
{{- include "llmctl-gateway.fullname" . }}
{{- end }}

{{/* Pod and container hardening shared by every workload. */}}
{{- define "llmctl-gateway.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{- define "llmctl-gateway.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The gateway image reference. */}}
{{- define "llmctl-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The gateway pod's terminationGracePeriodSeconds: after SIGTERM the gateway
drains requests for gateway.shutdownGraceSeconds, gives what is still open
2 s to end with a server_shutdown error, then flushes the ledger's spool for
up to 10 s (cmd/llmctl serve); 3 s more for the process to exit.
*/}}
{{- define "llmctl-gateway.terminationGrace" -}}
{{- $grace := int .Values.gateway.shutdownGraceSeconds }}
{{- $set := int .Values.gateway.terminationGracePeriodSeconds }}
{{- if eq $set 0 }}
{{- add $grace 15 }}
{{- else if lt $set (add $grace 12) }}
{{- fail (printf "gateway.terminationGracePeriodSeconds (%d) must be at least gateway.shutdownGraceSeconds + 12 (%d): the pod would be killed while draining or flushing the ledger" $set (add $grace 12)) }}
{{- else }}
{{- $set }}
{{- end }}
{{- end }}

{{/*
One egress rule to a URL's host and port, for a destination outside the
chart: an IPv4 literal gets an ipBlock /32, a Kubernetes service name
(NAME.NAMESPACE.svc...) its namespace; any other host name only its port,
since a NetworkPolicy cannot name a DNS name. Call with
(dict "url" URL "port" DEFAULT_PORT).
*/}}
{{- define "llmctl-gateway.egressURL" -}}
{{- $u := urlParse .url }}
{{- $host := $u.host }}
{{- $port := int .port }}
{{- if regexMatch ":[0-9]+$" $host }}
{{- $port = int (regexFind "[0-9]+$" $host) }}
{{- $host = regexReplaceAll ":[0-9]+$" $host "" }}
{{- end }}
- ports:
    - port: {{ $port }}
      protocol: TCP
  {{- if regexMatch "^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$" $host }}
  to:
    - ipBlock:
        cidr: {{ $host }}/32
  {{- else if regexMatch "^[^.]+\\.[^.]+\\.svc(\\.|$)" $host }}
  to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ index (splitList "." $host) 1 }}
  {{- end }}
{{- end }}
