-- Written and emptied by /readyz after a write failed, to learn whether the store takes writes
-- again (a full disk freed, say). Always empty between probes.
CREATE TABLE write_probe (
    filler BLOB NOT NULL
);
