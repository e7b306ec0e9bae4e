-- Back to seconds (the milliseconds within a second are dropped).
UPDATE identity SET created_at = created_at / 1000;
UPDATE intro_keys SET created_at = created_at / 1000;
UPDATE skipped_keys SET stored_at = stored_at / 1000;
