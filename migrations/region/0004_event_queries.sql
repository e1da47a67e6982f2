-- What GET /v1/events filters on beyond the columns it had: one array of
-- keys per event, each a fact a filter asks about ("at:<actor type>",
-- "ac:<action>", "ap:<action prefix>", "tt:<target type>", "w:<word>",
-- "m<json key><value>"; the actor and targets have their columns), under one GIN
-- index: a combination of filters is a single index scan, in which the
-- rarest key drives (GIN's fast scan), whatever the combination. The keys
-- are derived from the stored body by one SQL function, so that the
-- ingest statement, the backfill below and the trigger (for rows a build
-- without the column inserts during a rolling upgrade) agree. Only a
-- nullable column, functions, a trigger and an index: the previous build's
-- INSERT and SELECTs keep working. No extension is needed.

-- The words of a text as `q` matches them: lowercased, split at every
-- character that is not a letter or a digit, empty pieces dropped.
-- A key longer than 256 bytes is kept as '#' and its SHA-256: an index
-- entry has at most about 2.7 kB, and a metadata value or a word may be
-- 8 kB. Events and queries go through the same functions, so a long value
-- still matches exactly (up to a SHA-256 collision).
CREATE FUNCTION events_key_fit(k text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN octet_length(k) <= 256 THEN k
                ELSE '#' || encode(sha256(convert_to(k, 'UTF8')), 'hex') END
$$;

CREATE FUNCTION events_words_of(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT events_key_fit(w)), '{}')
      FROM regexp_split_to_table(lower(t), '[^[:alnum:]]+') AS w
     WHERE w <> ''
$$;

-- The keys of the words of `q`: all must be an event's.
CREATE FUNCTION events_query_words(q text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg('w:' || w), '{}') FROM unnest(events_words_of(q)) AS w
$$;

-- The key of a metadata member whose value is the string `v`: the member's
-- name as a JSON string (so that no name can run into the value), then the
-- value.
CREATE FUNCTION events_meta_key(k text, v text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT events_key_fit('m' || to_json(k)::text || v)
$$;

-- Every key of an event. Its words are those of its action, its actor's
-- id and name, its targets' ids and names, and the string values of its
-- metadata's top-level members; a name counts only when it is a string.
-- An action "a.b.c" has the prefixes "a." and "a.b.".
CREATE FUNCTION events_keys(body json) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    WITH t AS (SELECT x FROM json_array_elements(body->'targets') AS x),
         m AS (SELECT key, value #>> '{}' AS v FROM json_each(body->'metadata') WHERE json_typeof(value) = 'string')
    SELECT array_agg(DISTINCT k) FROM (
        SELECT 'at:' || (body->'actor'->>'type') AS k
        UNION ALL SELECT 'ac:' || (body->>'action')
        UNION ALL SELECT 'ap:' || left(body->>'action', p) FROM generate_series(1, length(body->>'action')) AS p
                  WHERE substr(body->>'action', p, 1) = '.'
        UNION ALL SELECT 'tt:' || (x->>'type') FROM t
        UNION ALL SELECT events_meta_key(key, v) FROM m
        UNION ALL SELECT 'w:' || w FROM unnest(events_words_of(concat_ws(' ',
                      body->>'action', body->'actor'->>'id',
                      CASE WHEN json_typeof(body->'actor'->'name') = 'string' THEN body->'actor'->>'name' END,
                      (SELECT string_agg(concat_ws(' ', x->>'id',
                                  CASE WHEN json_typeof(x->'name') = 'string' THEN x->>'name' END), ' ') FROM t),
                      (SELECT string_agg(v, ' ') FROM m)))) AS w) AS s
$$;

ALTER TABLE events ADD COLUMN keys text[];
-- A key is as rare as a word of one event or as common as a type: the
-- planner must know which (a rare one is read through the index, a common
-- one by walking the listing's order), so the statistics keep ten times
-- the default of the most common keys, and a key not among them is
-- estimated rare.
ALTER TABLE events ALTER COLUMN keys SET STATISTICS 1000;

-- Fills the keys of a row inserted without them (the previous build's
-- INSERT): a filter never misses an event for the build that stored it.
-- The current build fills them itself, so the trigger's WHEN keeps it from
-- running at all on its rows.
CREATE FUNCTION events_derive_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.keys := events_keys(NEW.body);
    RETURN NEW;
END
$$;
CREATE TRIGGER events_derive_keys BEFORE INSERT ON events
    FOR EACH ROW WHEN (NEW.keys IS NULL) EXECUTE FUNCTION events_derive_keys();

UPDATE events SET keys = events_keys(body);

CREATE INDEX events_by_key ON events USING gin (keys);
