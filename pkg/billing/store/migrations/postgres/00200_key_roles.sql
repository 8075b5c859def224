-- +goose Up
-- Store migrations after the ledger's (001xx) take 002xx: goose refuses a
-- version below one already applied, so an upgraded store needs them higher.

-- A key's role: 'user' calls the model API, 'admin' the admin API as well.
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin'));

-- An upgraded store: the admin tenant's keys (the bootstrap key, named
-- after serve.AdminTenant) were the operator's all along, so they become admin.
UPDATE api_keys SET role = 'admin' WHERE tenant_id IN (SELECT id FROM tenants WHERE name = 'admin');

-- +goose Down
ALTER TABLE api_keys DROP COLUMN role;
