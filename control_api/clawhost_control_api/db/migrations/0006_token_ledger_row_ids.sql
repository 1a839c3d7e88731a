-- Ledger rows keyed by an id the proxy generates; the client's X-Request-Id is a plain column, so a
-- client reusing one no longer hides a billed request. The proxy has stopped creating this table:
-- these migrations are its only definition.
ALTER TABLE token_ledger RENAME COLUMN request_id TO id;
ALTER TABLE token_ledger ADD COLUMN request_id text;
-- Rows keyed the old way (`<customer>/<request id>`) keep that key as their id.
UPDATE token_ledger SET request_id = substr(id, length(customer) + 2) WHERE starts_with(id, customer || '/');
UPDATE token_ledger SET request_id = id WHERE request_id IS NULL;
ALTER TABLE token_ledger ALTER COLUMN request_id SET NOT NULL;
CREATE INDEX token_ledger_customer_request ON token_ledger (customer, request_id);
