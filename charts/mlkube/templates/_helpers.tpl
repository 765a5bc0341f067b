{{- /* Every object's name comes from the release: the chart's name unless the release name
     already contains it ("mlkube" → mlkube-operator), else "<release>-mlkube-…". Cluster-scoped
     objects (ClusterRoles, bindings, webhook configurations) carry it too, so a second release
     (another namespace, its own watchNamespaces) installs beside the first. */ -}}
{{- define "mlkube.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mlkube.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* Selects the operator pods of this release only. */ -}}
{{- define "mlkube.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlkube.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "mlkube.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "mlkube.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlkube
{{- end -}}

{{- define "mlkube.operatorName" -}}
{{- include "mlkube.fullname" . }}-operator
{{- end -}}

{{- define "mlkube.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mlkube.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mlkube.webhookServiceName" -}}
{{- include "mlkube.fullname" . }}-webhook
{{- end -}}

{{- /* Cluster-scoped: one pair per release. */ -}}
{{- define "mlkube.webhookConfigurationName" -}}
{{- include "mlkube.fullname" . }}.webhooks.mlkube.dev
{{- end -}}

{{- /* The Secret holding the webhook's serving certificate (tls.crt, tls.key). */ -}}
{{- define "mlkube.webhookSecretName" -}}
{{- if eq .Values.webhook.tls.mode "provided" -}}
{{- required "webhook.tls.secretName (an existing kubernetes.io/tls Secret) is required in mode provided" .Values.webhook.tls.secretName -}}
{{- else -}}
{{- include "mlkube.fullname" . }}-webhook-tls
{{- end -}}
{{- end -}}
