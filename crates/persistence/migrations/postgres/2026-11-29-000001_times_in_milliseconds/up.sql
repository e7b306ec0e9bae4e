-- Every time column holds Unix milliseconds (the domain's `Timestamp`). The identity's and the
-- intro keys' `created_at` and the skipped keys' `stored_at` held seconds; every other time
-- column already held milliseconds. Values beyond the range of milliseconds saturate (SQLite
-- would turn an overflowing product into a REAL).
UPDATE identity SET created_at = CASE
    WHEN created_at > 9223372036854775 THEN 9223372036854775807
    WHEN created_at < -9223372036854775 THEN -9223372036854775808
    ELSE created_at * 1000 END;

UPDATE intro_keys SET created_at = CASE
    WHEN created_at > 9223372036854775 THEN 9223372036854775807
    WHEN created_at < -9223372036854775 THEN -9223372036854775808
    ELSE created_at * 1000 END;

UPDATE skipped_keys SET stored_at = CASE
    WHEN stored_at > 9223372036854775 THEN 9223372036854775807
    WHEN stored_at < -9223372036854775 THEN -9223372036854775808
    ELSE stored_at * 1000 END;
