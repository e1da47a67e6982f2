-- What GET /v1/events filters on beyond the columns it had: the actor's
-- type, the targets' types, the words of `q`, and the metadata's string
-- members. Each is derived from the stored body by one SQL function, so
-- that the ingest statement, the backfill below and the trigger (for rows a
-- build without these columns inserts during a rolling upgrade) agree.
-- Only nullable columns, a trigger and indexes: the previous build's
-- INSERT and SELECTs keep working. No extension is needed.

-- The words of a text as `q` matches them: lowercased, split at every
-- character that is not a letter or a digit, empty pieces dropped.
CREATE FUNCTION events_words_of(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT w), '{}')
      FROM regexp_split_to_table(lower(t), '[^[:alnum:]]+') AS w
     WHERE w <> ''
$$;

-- The searchable words of an event: its action, its actor's id and name,
-- its targets' ids and names, and the string values of its metadata's
-- top-level members. A name is taken only when it is a string.
CREATE FUNCTION events_words(body json) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT events_words_of(coalesce(string_agg(t, ' '), ''))
      FROM (SELECT body->>'action' AS t
            UNION ALL SELECT body->'actor'->>'id'
            UNION ALL SELECT body->'actor'->>'name' WHERE json_typeof(body->'actor'->'name') = 'string'
            UNION ALL SELECT x->>'id' FROM json_array_elements(body->'targets') AS x
            UNION ALL SELECT x->>'name' FROM json_array_elements(body->'targets') AS x
                       WHERE json_typeof(x->'name') = 'string'
            UNION ALL SELECT m.value #>> '{}' FROM json_each(body->'metadata') AS m
                       WHERE json_typeof(m.value) = 'string') AS s
$$;

-- The metadata's top-level string members, {} when none: what
-- `metadata.<key>=<value>` compares (exact string equality).
CREATE FUNCTION events_metadata_strings(body json) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(m.key, m.value #>> '{}'), '{}')
      FROM json_each(body->'metadata') AS m
     WHERE json_typeof(m.value) = 'string'
$$;

CREATE FUNCTION events_target_types(body json) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT x->>'type'), '{}') FROM json_array_elements(body->'targets') AS x
$$;

ALTER TABLE events
    ADD COLUMN actor_type    text,
    ADD COLUMN target_types  text[],
    ADD COLUMN words         text[],
    ADD COLUMN meta          jsonb;

-- Fills the derived columns of a row inserted without them (the previous
-- build's INSERT): a filter never misses an event for the build that
-- stored it. The current build fills them itself, so the trigger's WHEN
-- keeps it from running at all on its rows.
CREATE FUNCTION events_derive() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.actor_type := NEW.body->'actor'->>'type';
    NEW.target_types := events_target_types(NEW.body);
    NEW.words := events_words(NEW.body);
    NEW.meta := events_metadata_strings(NEW.body);
    RETURN NEW;
END
$$;
CREATE TRIGGER events_derive BEFORE INSERT ON events
    FOR EACH ROW WHEN (NEW.words IS NULL) EXECUTE FUNCTION events_derive();

UPDATE events SET actor_type = body->'actor'->>'type', target_types = events_target_types(body),
                  words = events_words(body), meta = events_metadata_strings(body);

-- Oldest first is the same indexes read backwards. The filters that are
-- columns get an index leading with the tenant and ending with the
-- listing's order, so that a page is the first rows of one index range;
-- the array and jsonb filters get GIN indexes (bitmap scans, sorted after)
-- and the planner weighs them against walking events_by_time.
CREATE INDEX events_by_actor_type ON events (tenant_id, actor_type, occurred_at DESC, seq DESC);
CREATE INDEX events_by_received ON events (tenant_id, received_at DESC, seq DESC);
-- `action=user.*`: a LIKE prefix on text_pattern_ops, whatever the collation.
CREATE INDEX events_by_action_prefix ON events (tenant_id, action text_pattern_ops);
CREATE INDEX events_by_target_type ON events USING gin (target_types);
CREATE INDEX events_by_word ON events USING gin (words);
CREATE INDEX events_by_meta ON events USING gin (meta jsonb_path_ops);
