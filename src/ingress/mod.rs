//! Webhook ingress: `POST /api/github/webhooks` verifies, deduplicates and durably stores each delivery before answering.
