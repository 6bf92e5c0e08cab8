-- On the PostgreSQL server, as a superuser: psql -f postgres-init.sql
-- Then `moorage migrate` creates the schema (as the moorage role, which owns the database).
CREATE ROLE moorage LOGIN PASSWORD 'change-me-db';
CREATE DATABASE moorage OWNER moorage ENCODING 'UTF8';
-- pg_hba.conf: let the two replicas (and the host that runs `moorage migrate`) in, e.g.
--   host  moorage  moorage  10.0.0.11/32  scram-sha-256
--   host  moorage  moorage  10.0.0.12/32  scram-sha-256
-- Each replica opens up to 40 connections per worker process (a pool of 10, 20 more at peaks,
-- and up to 10 for the pull path's lookups): with 2 replicas x 2 workers,
-- max_connections >= 160 plus what else uses the server.
