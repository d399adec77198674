//! The leader lease in the `leader_lease` row (see the coordinator's `Lease` seam).
//!
//! Time is the server's (`clock_timestamp()`): one clock judges every coordinator's lease.
//! A claim bumps the epoch; the write session's fencing check reads the epoch under a share
//! lock, and a claim's UPDATE must wait for that lock, so a claim never interleaves with a
//! batch in flight: the batch either committed under the old epoch before the claim, or
//! finds the new epoch and commits nothing.

use std::time::Duration;

use super::{PgError, PostgresStore};
use crate::coordinator::store::{Claim, Leader, Lease, StoreError};

/// A lease that has run out: not renewed for its holder's time to live.
const RUN_OUT: &str = "renewed_at + ttl_ms * interval '1 millisecond' < clock_timestamp()";

impl Lease for PostgresStore {
    fn claim(&self, id: &str, url: &str, ttl: Duration) -> Result<Claim, StoreError> {
        let ttl_ms = ttl.as_millis() as i64;
        let mut c = self.client()?;
        let won = c
            .query_opt(
                &format!(
                    "UPDATE leader_lease SET epoch = epoch + 1, holder = $1, url = $2, ttl_ms = $3, \
                     renewed_at = clock_timestamp() WHERE id = 1 AND (holder IS NULL OR holder = $1 OR {RUN_OUT}) RETURNING epoch"
                ),
                &[&id, &url, &ttl_ms],
            )
            .map_err(PgError::from)?;
        if let Some(row) = won {
            let epoch: i64 = row.try_get(0).map_err(PgError::from)?;
            return Ok(Claim::Won(epoch as u64));
        }
        drop(c);
        Ok(Claim::Held(self.leader()?))
    }

    fn renew(&self, epoch: u64, ttl: Duration) -> Result<bool, StoreError> {
        let mut c = self.client()?;
        let n = c
            .execute(
                "UPDATE leader_lease SET renewed_at = clock_timestamp(), ttl_ms = $2 WHERE id = 1 AND epoch = $1",
                &[&(epoch as i64), &(ttl.as_millis() as i64)],
            )
            .map_err(PgError::from)?;
        Ok(n == 1)
    }

    fn release(&self, epoch: u64) -> Result<(), StoreError> {
        let mut c = self.client()?;
        c.execute("UPDATE leader_lease SET holder = NULL, url = NULL WHERE id = 1 AND epoch = $1", &[&(epoch as i64)])
            .map_err(PgError::from)?;
        Ok(())
    }

    fn leader(&self) -> Result<Option<Leader>, StoreError> {
        let mut c = self.client()?;
        let row = c
            .query_one(&format!("SELECT holder, url, epoch, {RUN_OUT} FROM leader_lease WHERE id = 1"), &[])
            .map_err(PgError::from)?;
        let holder: Option<String> = row.try_get(0).map_err(PgError::from)?;
        let url: Option<String> = row.try_get(1).map_err(PgError::from)?;
        let epoch: i64 = row.try_get(2).map_err(PgError::from)?;
        let run_out: bool = row.try_get(3).map_err(PgError::from)?;
        Ok(match holder {
            Some(id) if !run_out => Some(Leader { id, url: url.unwrap_or_default(), epoch: epoch as u64 }),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::store::{Store, Write};
    use crate::store::postgres::ConnectOptions;

    #[test]
    fn a_writer_whose_lease_was_taken_over_commits_nothing_and_cannot_renew() {
        let Some(pg) = crate::store::testing::server::shared() else {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI: PostgreSQL's server binaries are missing");
            return;
        };
        let store = PostgresStore::open(ConnectOptions::parse(&pg.fresh_db(), None, None, true).unwrap()).unwrap();
        let hour = Duration::from_secs(3600);
        // A lease that runs out at once, so that another coordinator may take it over.
        let Ok(Claim::Won(first)) = store.claim("a", "http://a", Duration::ZERO) else { panic!("a new lease is free") };
        let mut old = store.write_session(Some(first)).unwrap();
        old.commit(&mut std::iter::once(&Write::Liveness(Vec::new()))).unwrap();
        let Ok(Claim::Won(second)) = store.claim("b", "http://b", hour) else {
            panic!("a run-out lease is taken over")
        };
        assert_eq!(second, first + 1);
        let err = old.commit(&mut std::iter::once(&Write::Liveness(Vec::new()))).unwrap_err().to_string();
        assert!(err.contains("fenced") && err.contains(&format!("epoch {second}")), "{err}");
        assert!(!store.renew(first, hour).unwrap(), "the old leader cannot renew");
        // A live lease is not taken over; its holder is named.
        match store.claim("c", "http://c", hour).unwrap() {
            Claim::Held(Some(leader)) => assert_eq!((leader.id.as_str(), leader.epoch), ("b", second)),
            other => panic!("{other:?}"),
        }
        let mut new = store.write_session(Some(second)).unwrap();
        new.commit(&mut std::iter::once(&Write::Liveness(Vec::new()))).unwrap();
        // Given up, it is free at once.
        store.release(second).unwrap();
        assert_eq!(store.leader().unwrap(), None);
        assert!(matches!(store.claim("c", "http://c", hour).unwrap(), Claim::Won(e) if e == second + 1));
    }
}
