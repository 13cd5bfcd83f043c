-- The first login follows the order of each society's guide, and a member who closes the
-- browser part-way resumes at the first step not yet done. Proving the birth date is kept
-- with the member (until new temporary credentials are issued), and so is the end of the
-- first login: where the method is set up at the next sign-in, that sign-in knows it.
ALTER TABLE members ADD COLUMN birth_date_verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE members ADD COLUMN first_login_done_at BIGINT;

-- Members in use today are past their first login.
UPDATE members SET first_login_done_at = updated_at
WHERE state = 'active'
   OR (state = 'disabled' AND COALESCE(state_before_disable, 'active') <> 'temporary');
