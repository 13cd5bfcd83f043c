-- Passkeys, e-mail one-time passwords and step-up with a second factor.

-- Passkeys: the credential id (base64url) of a passkey row in mfa_devices. One credential
-- belongs to one member of a tenant.
ALTER TABLE mfa_devices ADD COLUMN credential_id TEXT;
CREATE UNIQUE INDEX mfa_devices_by_credential ON mfa_devices (tenant_id, credential_id);

-- E-mail one-time passwords are a factor of the member once a mailed code proved the address.
ALTER TABLE members ADD COLUMN email_otp_enabled BOOLEAN NOT NULL DEFAULT FALSE;

-- What a flow proved as its second factor (totp | passkey | email_otp), whether the
-- device it set out to add is registered, a WebAuthn ceremony in progress (JSON, expires),
-- and the e-mail code of the flow (keyed hash, single use, limited attempts).
ALTER TABLE login_flows ADD COLUMN factor_method TEXT;
ALTER TABLE login_flows ADD COLUMN setup_done BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE login_flows ADD COLUMN ceremony TEXT;
ALTER TABLE login_flows ADD COLUMN ceremony_expires_at BIGINT;
ALTER TABLE login_flows ADD COLUMN email_code_hash TEXT;
ALTER TABLE login_flows ADD COLUMN email_code_sent_at BIGINT;
ALTER TABLE login_flows ADD COLUMN email_code_expires_at BIGINT;
ALTER TABLE login_flows ADD COLUMN email_code_attempts BIGINT NOT NULL DEFAULT 0;

-- How the session's last authentication was made: password | totp | passkey | email_otp.
-- A step-up after a passkey asks for the password only.
ALTER TABLE sessions ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'password';
