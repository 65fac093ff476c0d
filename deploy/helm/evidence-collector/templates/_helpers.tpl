{{- define "evidence-collector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "evidence-collector.fullname" -}}
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

{{- define "evidence-collector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "evidence-collector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "evidence-collector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "evidence-collector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "evidence-collector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "evidence-collector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "evidence-collector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "evidence-collector.signingKeyPath" -}}
/etc/evidence-collector/signing/{{ .Values.signingKey.key }}
{{- end }}

{{- define "evidence-collector.mappingsPath" -}}
/etc/evidence-collector/mappings
{{- end }}

{{/* "true" when a kubernetes connector is configured: only then does the chart create cluster-wide RBAC. */}}
{{- define "evidence-collector.kubernetesConnector" -}}
{{- range .Values.config.connectors }}{{ if eq .type "kubernetes" }}true{{ end }}{{ end }}
{{- end }}

{{/* Scheduled exports as the collector reads them: one without its own key is signed with signingKey. */}}
{{- define "evidence-collector.exports" -}}
{{- $exports := list }}
{{- range .Values.config.exports }}
{{- if or .sign_key_file .sign_key_env }}
{{- $exports = append $exports . }}
{{- else if $.Values.signingKey.existingSecret }}
{{- $exports = append $exports (merge (dict "sign_key_file" (include "evidence-collector.signingKeyPath" $)) .) }}
{{- else }}
{{- fail (printf "config.exports[%s] needs a signing key: set signingKey.existingSecret, or sign_key_file / sign_key_env on the export" (toString .name)) }}
{{- end }}
{{- end }}
{{- toYaml $exports }}
{{- end }}

{{/* Refuse what cannot work, before anything is rendered. */}}
{{- define "evidence-collector.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (eq .Values.database.type "sqlite") }}
{{- fail "replicaCount > 1 needs database.type=postgresql: SQLite is one file on one node, so the collector stays a single replica" }}
{{- end }}
{{- if and (eq .Values.database.type "postgresql") (not .Values.database.postgresql.existingSecret) }}
{{- fail "database.type=postgresql needs database.postgresql.existingSecret (a Secret holding the database URL)" }}
{{- end }}
{{- if and .Values.mappings.configMap .Values.mappings.volume }}
{{- fail "give mappings.configMap or mappings.volume, not both" }}
{{- end }}
{{- end }}
