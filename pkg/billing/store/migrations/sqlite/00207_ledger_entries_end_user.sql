-- +goose Up
-- What a charge records beyond its key: the end user the client named in
-- the OpenAI `user` field (at most 256 bytes, checked by the gateway) and
-- how many of the prompt tokens the backend served from its prefix cache
-- (charged at the model's cachedInput price). Old entries read '' and 0,
-- which is what they were: no end user recorded, no cached token priced.
ALTER TABLE ledger_entries ADD COLUMN end_user TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger_entries ADD COLUMN cached_prompt_tokens BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE ledger_entries DROP COLUMN cached_prompt_tokens;
ALTER TABLE ledger_entries DROP COLUMN end_user;
