-- Webhook secrets sealed under the master key (associated data `webhook:SERVER_ID`), like
-- every other secret. The plaintext column of 0009 is emptied by `skyport serve` at start
-- (`Servers::seal_webhook_secrets`): sealing needs the key, which SQL does not have.
ALTER TABLE servers ADD COLUMN webhook_secret_sealed BLOB;
