-- An admin is active only once they hold a second factor: an invitation accepted with a
-- password but no factor registered leaves the admin invited, so the password alone can
-- never register a factor. Admins in that state today go back to invited; a fresh
-- invitation link (「招待メールを送る」 again) lets them finish.
UPDATE admins SET state = 'invited'
WHERE state = 'active'
  AND NOT EXISTS (
    SELECT 1 FROM admin_devices d WHERE d.tenant_id = admins.tenant_id AND d.admin_id = admins.id
  );

-- Letters and credentials CSVs are claimed by one statement each; expired ones are swept.
CREATE INDEX member_letters_by_expiry ON member_letters (expires_at);

-- A batch of letters is handed out only to the admin who issued it (a letter of one clerk
-- is never opened by another from the address bar). Batches of before have no issuer and
-- lapse within their hour.
ALTER TABLE member_letters ADD COLUMN admin_id TEXT;
