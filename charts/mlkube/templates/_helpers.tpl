{{- define "mlkube.labels" -}}
app.kubernetes.io/name: mlkube
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- /* The Secret holding the webhook's serving certificate (tls.crt, tls.key). */ -}}
{{- define "mlkube.webhookSecretName" -}}
{{- if eq .Values.webhook.tls.mode "provided" -}}
{{- required "webhook.tls.secretName (an existing kubernetes.io/tls Secret) is required in mode provided" .Values.webhook.tls.secretName -}}
{{- else -}}
mlkube-webhook-tls
{{- end -}}
{{- end -}}
