package store

// Audit actions of the alerts (llmctl alerts, /admin/v1/alerts/...).
const (
	AuditAlertsRedeliver = "alerts.redeliver"
	AuditAlertsThreshold = "alerts.threshold"
)
