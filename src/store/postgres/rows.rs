//! Reading columns of a row with damage named: a value of the wrong type, a JSON column
//! that does not parse, an unknown enum name or a negative count is an error that names the
//! table, the row and the column (`tasks row task_x column required_skills: …`), never a
//! silent default — the same rule and wording as the SQLite store's.

use postgres::Row;
use postgres::types::FromSql;

use super::PgError;

/// The columns of one row of `table`, whose key (for messages) is `key`.
pub struct Cols<'a> {
    row: &'a Row,
    table: &'static str,
    key: String,
}

impl<'a> Cols<'a> {
    /// The row, its key read from column `key_idx` as text.
    pub fn keyed(row: &'a Row, table: &'static str, key_idx: usize) -> Result<Cols<'a>, PgError> {
        let mut cols = Cols { row, table, key: "?".into() };
        cols.key = match row.try_get::<_, Option<String>>(key_idx) {
            Ok(Some(k)) => k,
            Ok(None) => "(null)".into(),
            Err(_) => row
                .try_get::<_, i64>(key_idx)
                .map(|v| v.to_string())
                .map_err(|e| cols.damaged(key_idx, &e.to_string()))?,
        };
        Ok(cols)
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The error for a damaged column.
    pub fn damaged(&self, idx: usize, what: &str) -> PgError {
        let column = self.row.columns().get(idx).map(|c| c.name()).unwrap_or("?");
        PgError::Damaged(format!("damaged row in the store: {} row {} column {column}: {what}", self.table, self.key))
    }

    pub fn get<T: FromSql<'a>>(&self, idx: usize) -> Result<T, PgError> {
        self.row.try_get(idx).map_err(|e| self.damaged(idx, &e.to_string()))
    }

    /// A BIGINT that must be a `u32` (an attempt, a count of retries).
    pub fn u32(&self, idx: usize) -> Result<u32, PgError> {
        let v: i64 = self.get(idx)?;
        u32::try_from(v).map_err(|_| self.damaged(idx, &format!("{v} is out of range")))
    }

    pub fn opt_u32(&self, idx: usize) -> Result<Option<u32>, PgError> {
        let v: Option<i64> = self.get(idx)?;
        v.map(|v| u32::try_from(v).map_err(|_| self.damaged(idx, &format!("{v} is out of range")))).transpose()
    }

    /// A BIGINT that must not be negative.
    pub fn u64(&self, idx: usize) -> Result<u64, PgError> {
        let v: i64 = self.get(idx)?;
        u64::try_from(v).map_err(|_| self.damaged(idx, &format!("negative count {v}")))
    }

    pub fn u16(&self, idx: usize) -> Result<u16, PgError> {
        let v: i64 = self.get(idx)?;
        u16::try_from(v).map_err(|_| self.damaged(idx, &format!("{v} is out of range")))
    }

    /// A JSON text column.
    pub fn json<T: serde::de::DeserializeOwned>(&self, idx: usize) -> Result<T, PgError> {
        let text: &str = self.get(idx)?;
        serde_json::from_str(text).map_err(|e| self.damaged(idx, &format!("not the JSON expected ({e})")))
    }

    /// A nullable JSON text column: NULL is `None`.
    pub fn opt_json<T: serde::de::DeserializeOwned>(&self, idx: usize) -> Result<Option<T>, PgError> {
        let text: Option<&str> = self.get(idx)?;
        text.map(|t| serde_json::from_str(t).map_err(|e| self.damaged(idx, &format!("not the JSON expected ({e})"))))
            .transpose()
    }

    /// A text column holding a name (`FromStr`).
    pub fn name<T: std::str::FromStr>(&self, idx: usize) -> Result<T, PgError> {
        let text: &str = self.get(idx)?;
        text.parse().map_err(|_| self.damaged(idx, &format!("unknown value `{text}`")))
    }
}

/// JSON text of a value for a TEXT column.
pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}
