{{/*
Names, labels and the per-service facts every template shares.
*/}}

{{- define "mailstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mailstream.fullname" -}}
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

{{/* The name of one service's objects: (list $ "ingest") -> "<fullname>-ingest". */}}
{{- define "mailstream.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "mailstream.fullname" $root | trunc 50 | trimSuffix "-") (index . 1) }}
{{- end }}

{{- define "mailstream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mailstream.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "mailstream.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "mailstream.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "mailstream.chart" $root }}
{{ include "mailstream.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: mailstream
{{- end }}

{{/* Labels of chart-wide objects (ConfigMap, Secret, ServiceAccount). */}}
{{- define "mailstream.commonLabels" -}}
helm.sh/chart: {{ include "mailstream.chart" . }}
app.kubernetes.io/name: {{ include "mailstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mailstream
{{- end }}

{{- define "mailstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mailstream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mailstream.secretName" -}}
{{- default (printf "%s-secrets" (include "mailstream.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "mailstream.configMapName" -}}
{{- printf "%s-config" (include "mailstream.fullname" .) }}
{{- end }}

{{/* The services, in start-up order of their dependencies (domains first: sender and the gateway call it). */}}
{{- define "mailstream.serviceNames" -}}
domains automation sender inbox ingest
{{- end }}

{{/*
Facts about each service's code that values do not change: its HTTP port (ops routes /healthz, /readyz, /metrics
live there too) and the variables naming that port and its listen host. Ports are the services' defaults.
*/}}
{{- define "mailstream.components" -}}
ingest:
  httpPort: 8101
  httpPortEnv: INGEST_OPS_PORT
  httpHostEnv: OPS_HOST
  roleEnv: INGEST_ROLE
inbox:
  httpPort: 8000
  httpPortEnv: INBOX_HTTP_PORT
  httpHostEnv: INBOX_HTTP_HOST
  roleEnv: INBOX_ROLE
automation:
  httpPort: 8103
  httpPortEnv: AUTOMATION_HTTP_PORT
  httpHostEnv: AUTOMATION_HTTP_HOST
domains:
  httpPort: 8102
  httpPortEnv: DOMAINS_HTTP_PORT
  httpHostEnv: DOMAINS_HTTP_HOST
sender:
  httpPort: 8104
  httpPortEnv: SENDER_HTTP_PORT
  httpHostEnv: SENDER_HTTP_HOST
{{- end }}

{{/*
The Deployments to run: one per service, plus the optional second half of a split service.
- ingest.analyse.enabled: "ingest" runs the SMTP front door only (INGEST_ROLE=smtp) and "ingest-analyse" the
  analysis workers (INGEST_ROLE=analyse), each scaled on its own.
- inbox.worker.enabled: "inbox" serves the API only (INBOX_ROLE=api) and "inbox-worker" runs the consumers.
- inbox.webhooks.enabled: "inbox-webhooks" runs the webhook dispatcher (`python -m mailstream_inbox.webhooks`).
Each entry: name (object suffix and component label), service (image, settings, ports), part (the values block
inside the service's that overrides its sizing and scaling; empty for the main one) and role.
*/}}
{{- define "mailstream.workloads" -}}
workloads:
{{- range $service := splitList " " (include "mailstream.serviceNames" $) }}
{{- if eq $service "ingest" }}
  - {name: ingest, service: ingest, part: "", role: {{ ternary "smtp" $.Values.ingest.role $.Values.ingest.analyse.enabled | quote }}}
  {{- if $.Values.ingest.analyse.enabled }}
  - {name: ingest-analyse, service: ingest, part: analyse, role: analyse}
  {{- end }}
{{- else if eq $service "inbox" }}
  - {name: inbox, service: inbox, part: "", role: {{ ternary "api" $.Values.inbox.role $.Values.inbox.worker.enabled | quote }}}
  {{- if $.Values.inbox.worker.enabled }}
  - {name: inbox-worker, service: inbox, part: worker, role: worker}
  {{- end }}
  {{- if $.Values.inbox.webhooks.enabled }}
  - {name: inbox-webhooks, service: inbox, part: webhooks, role: ""}
  {{- end }}
{{- else }}
  - {name: {{ $service }}, service: {{ $service }}, part: "", role: ""}
{{- end }}
{{- end }}
{{- end }}

{{/* A workload's values: its part's keys over its service's. (list $ $workload) -> YAML. */}}
{{- define "mailstream.workloadValues" -}}
{{- $root := index . 0 }}
{{- $workload := index . 1 }}
{{- $service := get $root.Values $workload.service }}
{{- if $workload.part }}
{{- toYaml (merge (deepCopy (get $service $workload.part)) (deepCopy $service)) }}
{{- else }}
{{- toYaml $service }}
{{- end }}
{{- end }}

{{- define "mailstream.image" -}}
{{- $root := index . 0 }}
{{- $values := index . 1 }}
{{- $repository := $values.image.repository }}
{{- if $root.Values.image.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" $root.Values.image.registry) $repository }}
{{- end }}
{{- printf "%s:%s" $repository (default (default $root.Chart.AppVersion $root.Values.image.tag) $values.image.tag) }}
{{- end }}

{{- define "mailstream.internalUrl" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $components := include "mailstream.components" $root | fromYaml }}
{{- printf "http://%s:%v" (include "mailstream.componentName" (list $root $name)) (get $components $name).httpPort }}
{{- end }}

{{- define "mailstream.secretEnv" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $key := index . 2 }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "mailstream.secretName" $root }}
      key: {{ $key }}
{{- end }}

{{- define "mailstream.dnsNameserversEnv" -}}
{{- if .Values.dnsNameservers }}
- name: DNS_NAMESERVERS
  value: {{ join "," .Values.dnsNameservers | quote }}
{{- end }}
{{- end }}

{{/*
The database of one service: each service owns its collections (docs/architecture.md, "Each service owns its
data"), so each gets a database of its own, "<mongodb.database>_<service>" unless mongodb.databases.<service> names
one; mongodb.databasePerService=false puts them all in mongodb.database (the shared MONGODB_DATABASE).
*/}}
{{- define "mailstream.database" -}}
{{- $root := index . 0 -}}
{{- $service := index . 1 -}}
{{- $named := index ($root.Values.mongodb.databases | default dict) $service | default "" -}}
{{- if $named -}}
{{- $named -}}
{{- else if $root.Values.mongodb.databasePerService -}}
{{- printf "%s_%s" $root.Values.mongodb.database $service -}}
{{- else -}}
{{- $root.Values.mongodb.database -}}
{{- end -}}
{{- end }}

{{- define "mailstream.bounceDomainEnv" -}}
{{- if .Values.bounceDomain }}
- name: MAILSTREAM_BOUNCE_DOMAIN
  value: {{ .Values.bounceDomain | quote }}
{{- end }}
{{- end }}

{{/*
Per-service environment beyond the shared ConfigMap and the back-end Secrets. Every name here must be a setting
of that service (tests/deploy/test_deploy_files.py checks them against the services' settings classes).
*/}}
{{- define "mailstream.env.ingest" -}}
- name: INGEST_MONGODB_DATABASE
  value: {{ include "mailstream.database" (list . "ingest") | quote }}
- name: INGEST_SMTP_HOST
  value: "0.0.0.0"
- name: INGEST_SMTP_PORT
  value: "2525"
- name: INGEST_MAX_MESSAGE_BYTES
  value: {{ .Values.ingest.maxMessageBytes | int64 | quote }}
{{- if .Values.ingest.tlsSecret }}
- name: INGEST_TLS_CERT_FILE
  value: /var/run/mailstream/smtp-tls/tls.crt
- name: INGEST_TLS_KEY_FILE
  value: /var/run/mailstream/smtp-tls/tls.key
{{- end }}
{{- if .Values.ingest.proxyProtocol }}
- name: INGEST_PROXY_PROTOCOL
  value: "true"
{{- end }}
{{- if .Values.ingest.smtpHostname }}
- name: INGEST_SMTP_HOSTNAME
  value: {{ .Values.ingest.smtpHostname | quote }}
{{- end }}
{{- include "mailstream.bounceDomainEnv" . }}
{{- include "mailstream.dnsNameserversEnv" . }}
{{- include "mailstream.secretEnv" (list . "MAILSTREAM_VERP_SECRET" .Values.secrets.verpSecretKey) }}
{{- end }}

{{- define "mailstream.env.inbox" -}}
- name: INBOX_MONGODB_DATABASE
  value: {{ include "mailstream.database" (list . "inbox") | quote }}
- name: DOMAINS_URL
  value: {{ include "mailstream.internalUrl" (list . "domains") | quote }}
- name: AUTOMATION_URL
  value: {{ include "mailstream.internalUrl" (list . "automation") | quote }}
- name: SENDER_URL
  value: {{ include "mailstream.internalUrl" (list . "sender") | quote }}
{{- include "mailstream.bounceDomainEnv" . }}
{{- include "mailstream.secretEnv" (list . "MAILSTREAM_GATEWAY_TOKEN" .Values.secrets.gatewayTokenKey) }}
{{- include "mailstream.secretEnv" (list . "WEBHOOKS_SECRET_ENCRYPTION_KEY" .Values.secrets.webhookSecretEncryptionKeyKey) }}
- name: WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS
  value: {{ .Values.inbox.webhooks.allowPrivateDestinations | quote }}
{{- end }}

{{- define "mailstream.env.automation" -}}
{{- include "mailstream.secretEnv" (list . "MAILSTREAM_GATEWAY_TOKEN_SHA256" (printf "%s-sha256" .Values.secrets.gatewayTokenKey)) }}
- name: AUTOMATION_MONGODB_DATABASE
  value: {{ include "mailstream.database" (list . "automation") | quote }}
{{- end }}

{{- define "mailstream.env.domains" -}}
- name: DOMAINS_MONGODB_DATABASE
  value: {{ include "mailstream.database" (list . "domains") | quote }}
# The key is read from a mounted file, so it never shows in the pod's environment.
- name: DOMAINS_KEY_ENCRYPTION_KEY_FILE
  value: /var/run/mailstream/secrets/dkim-key-encryption-key
# Always set: when unset the service falls back to a development placeholder.
- name: DOMAINS_SPF_INCLUDE
  value: {{ .Values.spf.include | quote }}
- name: DOMAINS_SPF_IPS
  value: {{ join "," .Values.spf.ips | quote }}
- name: DOMAINS_ED25519
  value: {{ .Values.domains.ed25519 | quote }}
{{- if .Values.dmarcReportAddress }}
- name: DOMAINS_DMARC_RUA
  value: {{ .Values.dmarcReportAddress | quote }}
{{- end }}
{{- include "mailstream.bounceDomainEnv" . }}
{{- include "mailstream.dnsNameserversEnv" . }}
{{- include "mailstream.secretEnv" (list . "MAILSTREAM_GATEWAY_TOKEN_SHA256" (printf "%s-sha256" .Values.secrets.gatewayTokenKey)) }}
{{- include "mailstream.secretEnv" (list . "MAILSTREAM_SENDER_TOKEN_SHA256" (printf "%s-sha256" .Values.secrets.senderTokenKey)) }}
{{- end }}

{{- define "mailstream.env.sender" -}}
- name: SENDER_MONGODB_DATABASE
  value: {{ include "mailstream.database" (list . "sender") | quote }}
- name: SENDER_SMTP_HOST
  value: {{ required "smarthost.host is required" .Values.smarthost.host | quote }}
- name: SENDER_SMTP_PORT
  value: {{ .Values.smarthost.port | int | quote }}
- name: SENDER_SMTP_TLS
  value: {{ .Values.smarthost.tls | quote }}
- name: SENDER_SMTP_TLS_VERIFY
  value: {{ .Values.smarthost.tlsVerify | quote }}
- name: SENDER_SMTP_POOL_SIZE
  value: {{ .Values.sender.smtpPoolSize | int | quote }}
{{- if .Values.smarthost.heloName }}
- name: SENDER_HELO_NAME
  value: {{ .Values.smarthost.heloName | quote }}
{{- end }}
{{- include "mailstream.secretEnv" (list . "MAILSTREAM_SENDER_TOKEN" .Values.secrets.senderTokenKey) }}
{{- include "mailstream.secretEnv" (list . "MAILSTREAM_GATEWAY_TOKEN_SHA256" (printf "%s-sha256" .Values.secrets.gatewayTokenKey)) }}
{{- include "mailstream.secretEnv" (list . "MAILSTREAM_VERP_SECRET" .Values.secrets.verpSecretKey) }}
{{- with .Values.smarthost.authSecret }}
{{- if .name }}
- name: SENDER_SMTP_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .usernameKey }}
- name: SENDER_SMTP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
- name: DOMAINS_URL
  value: {{ include "mailstream.internalUrl" (list . "domains") | quote }}
{{- include "mailstream.bounceDomainEnv" . }}
{{- end }}
