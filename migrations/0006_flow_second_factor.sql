-- What a sign-in flow has proven besides the password, and the TOTP secret being set up
-- (sealed) until the member confirms it with a code.

ALTER TABLE login_flows ADD COLUMN factor_verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE login_flows ADD COLUMN pending_secret TEXT;
