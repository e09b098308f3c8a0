{{- define "blocklearn.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "blocklearn.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "blocklearn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "blocklearn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "blocklearn.labels" -}}
{{ include "blocklearn.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "blocklearn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "blocklearn.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels of one part of the release: app.kubernetes.io/component is the part's role. */}}
{{- define "blocklearn.componentLabels" -}}
{{ include "blocklearn.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* registry/repository, then @digest when pinned, else :tag (the chart's appVersion by default). */}}
{{- define "blocklearn.image" -}}
{{- $repo := .Values.image.repository -}}
{{- with .Values.image.registry }}{{ $repo = printf "%s/%s" . $repo }}{{ end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Settings shared by the controller and the index: both must embed with the same embedder. */}}
{{- define "blocklearn.env" -}}
- name: BLOCKLEARN_NAMESPACES
  value: {{ .Values.watchNamespaces | toJson | quote }}
- name: BLOCKLEARN_EMBEDDER
  value: {{ .Values.embedder.type | quote }}
- name: BLOCKLEARN_HASHING_DIM
  value: {{ .Values.embedder.hashingDim | quote }}
- name: BLOCKLEARN_SEMANTIC_THREADS
  value: {{ .Values.embedder.semanticThreads | quote }}
- name: BLOCKLEARN_EMBEDDING_DTYPE
  value: {{ .Values.embedder.storageDtype | quote }}
- name: BLOCKLEARN_EMBED_BATCH_SIZE
  value: {{ .Values.embedder.batchSize | quote }}
- name: BLOCKLEARN_EMBED_TIMEOUT_SECONDS
  value: {{ .Values.embedder.timeoutSeconds | quote }}
- name: BLOCKLEARN_LOG_FORMAT
  value: {{ .Values.controller.logFormat | quote }}
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
# Two malloc arenas: with one per worker thread, memory fragments and grows (bench/soak.py).
- name: MALLOC_ARENA_MAX
  value: "2"
{{- if eq .Values.embedder.type "openai" }}
- name: BLOCKLEARN_OPENAI_BASE_URL
  value: {{ .Values.embedder.openai.baseUrl | quote }}
- name: BLOCKLEARN_OPENAI_MODEL
  value: {{ .Values.embedder.openai.model | quote }}
- name: OPENAI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "embedder.openai.apiKeySecret.name: the openai embedder reads its API key from a Secret" .Values.embedder.openai.apiKeySecret.name }}
      key: {{ .Values.embedder.openai.apiKeySecret.key }}
{{- end }}
{{- end -}}
