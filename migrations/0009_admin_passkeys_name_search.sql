-- Admins choose their second factor (an authenticator app or a passkey) when they accept
-- the invitation; an admin without one sets up the kind chosen here at the next sign-in.
ALTER TABLE admins ADD COLUMN mfa_method TEXT;

-- Member search by a part of a name compares `search_name`: the display name and the name
-- in kana reduced to one key each (no spaces, NFKC, hiragana as katakana, lower case),
-- separated by a line break. The server computes it; rows written before this migration
-- have '' until the server fills them in at start-up (found through the partial index).
ALTER TABLE members ADD COLUMN search_name TEXT NOT NULL DEFAULT '';
CREATE INDEX members_search_name_pending ON members (id) WHERE search_name = '';

-- A search walks one tenant's members in user ID order, testing each row. This index holds
-- every column such a test reads, so the walk never visits the (much wider) member rows.
CREATE INDEX members_search ON members
    (tenant_id, user_id, search_name, birth_date, state, locked_until);
