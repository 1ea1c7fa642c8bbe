//! The two databases the store runs on, and the few SQL forms that differ
//! between them. Almost every query is written once, in SQL both accept
//! (`$N` placeholders, `CASE` rather than two-argument `max()`, `CAST(... AS
//! BIGINT)`); the ones that unpack a JSON array of rows (the event writer's
//! batches) are built here for each dialect from one description.

use sqlx::AnyConnection;

/// Which database a [`Store`](crate::Store) runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite file in the data directory (one node).
    Sqlite,
    /// A PostgreSQL server, shared by the nodes of a cluster.
    Postgres,
}

impl Backend {
    /// The backend a connection talks to.
    pub(crate) fn of(connection: &AnyConnection) -> Backend {
        if connection.backend_name().eq_ignore_ascii_case("PostgreSQL") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// Its name, as `cluster status` and the logs show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// `FROM` item unpacking the JSON array parameter `$n` into rows `v`, each
    /// row an array read with [`Backend::int`], [`Backend::text`] and
    /// [`Backend::json`]. On PostgreSQL the `json` type (not `jsonb`) keeps
    /// the nested values' text as it was sent.
    pub(crate) fn json_rows(self, n: u8) -> String {
        match self {
            Backend::Sqlite => format!("jsonb_each(${n}) AS v"),
            Backend::Postgres => format!("json_array_elements(${n}::json) AS v (value)"),
        }
    }

    /// [`Backend::json_rows`] that also numbers the rows from 0 in `v.key`.
    pub(crate) fn json_rows_numbered(self, n: u8) -> String {
        match self {
            Backend::Sqlite => format!("jsonb_each(${n}) AS v"),
            Backend::Postgres => {
                format!(
                    "(SELECT value, ord - 1 AS key FROM json_array_elements(${n}::json) WITH ORDINALITY AS e (value, ord)) AS v"
                )
            }
        }
    }

    /// `FROM` item unpacking the JSON array of strings `$n` into rows `v` of
    /// one text column `v.value`.
    pub(crate) fn json_strings(self, n: u8) -> String {
        match self {
            Backend::Sqlite => format!("json_each(${n}) AS v"),
            Backend::Postgres => format!("json_array_elements_text(${n}::json) AS v (value)"),
        }
    }

    /// Element `i` of a JSON row `v`, as an integer.
    pub(crate) fn int(self, i: usize) -> String {
        match self {
            Backend::Sqlite => format!("v.value ->> {i}"),
            Backend::Postgres => format!("(v.value ->> {i})::bigint"),
        }
    }

    /// Element `i` of a JSON row `v`, as text (NULL for a JSON null).
    pub(crate) fn text(self, i: usize) -> String {
        format!("v.value ->> {i}")
    }

    /// Element `i` of a JSON row `v`, as JSON text (`null` for a JSON null).
    pub(crate) fn json(self, i: usize) -> String {
        match self {
            Backend::Sqlite => format!("v.value -> {i}"),
            Backend::Postgres => format!("(v.value -> {i})::text"),
        }
    }
}

/// One statement in both dialects, built once.
pub(crate) struct Sql {
    sqlite: String,
    postgres: String,
}

impl Sql {
    /// Builds the statement for each backend.
    pub(crate) fn new(build: impl Fn(Backend) -> String) -> Sql {
        Sql {
            sqlite: build(Backend::Sqlite),
            postgres: build(Backend::Postgres),
        }
    }

    /// The statement for `backend`.
    pub(crate) fn get(&'static self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => &self.sqlite,
            Backend::Postgres => &self.postgres,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_read_by_position_in_each_dialect() {
        let sqlite = Backend::Sqlite;
        let postgres = Backend::Postgres;
        assert_eq!(sqlite.int(2), "v.value ->> 2");
        assert_eq!(postgres.int(2), "(v.value ->> 2)::bigint");
        assert_eq!(postgres.text(1), sqlite.text(1));
        assert_eq!(postgres.json(5), "(v.value -> 5)::text");
        assert!(postgres.json_rows(1).contains("$1::json"));
        assert!(sqlite.json_rows(1).contains("jsonb_each($1)"));
    }
}
