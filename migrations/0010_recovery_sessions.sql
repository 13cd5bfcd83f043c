-- A sign-in flow opened from a 「パスワードをリセット」 link carries the hash of that link's
-- token; the token is spent (and the flow's debt paid) when the new password is set.
ALTER TABLE login_flows ADD COLUMN reset_token_hash TEXT;

-- What a member sees of their own sessions under 「ログイン方法変更」: the browser and the
-- address each was opened from. Sessions opened before this migration show neither.
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN ip TEXT NOT NULL DEFAULT '';

