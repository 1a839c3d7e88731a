-- Prompt tokens the upstream served from its prompt cache (part of prompt_tokens), and what each request
-- counted against the monthly limit (cached prompt tokens at the tier's cached_prompt_weight).
ALTER TABLE token_ledger ADD COLUMN cached_prompt_tokens integer NOT NULL DEFAULT 0;
ALTER TABLE token_ledger ADD COLUMN charged_tokens integer;
UPDATE token_ledger SET charged_tokens = prompt_tokens + completion_tokens;
ALTER TABLE token_ledger ALTER COLUMN charged_tokens SET NOT NULL;
