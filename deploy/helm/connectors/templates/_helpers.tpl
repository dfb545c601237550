{{/* The full name of one connector's resources. */}}
{{- define "connectors.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every resource carries. */}}
{{- define "connectors.labels" -}}
app.kubernetes.io/name: connectors
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- if .name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}
{{- end -}}

{{/* What selects one connector's pods. */}}
{{- define "connectors.selector" -}}
app.kubernetes.io/name: connectors
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* The connectors.json of one connector. */}}
{{- define "connectors.config" -}}
{{- $entry := merge (dict "name" .name "enabled" true) (deepCopy .connector.config) -}}
{{- dict "connectors" (list $entry) | toPrettyJson -}}
{{- end -}}
