//! DryRun: a request authorized and validated in full, whose effect and
//! answer are dropped for DryRunOperationException.
//!
//! Why a flag of the running thread rather than a parameter: DryRun must
//! reach the one place every operation passes through (`LocalKms::run`,
//! which audits the call and records key usage, and `change_key`, which
//! writes the store) without a second signature for every public method
//! that `KeyService`, the tests and the CLI call. `LocalKms` calls are
//! synchronous and never hop threads, so the flag set around one call by
//! [`LocalKms::dry_run`] is seen by that call alone, and a guard restores it
//! even if the call panics.

use std::cell::Cell;

use super::LocalKms;
use crate::error::{KmsError, Result};

/// AWS's message for a dry run that would have succeeded.
pub const DRY_RUN_MESSAGE: &str = "The request would have succeeded, but the DryRun option is set.";

thread_local! {
    static DRY_RUN: Cell<bool> = const { Cell::new(false) };
}

pub(super) fn active() -> bool {
    DRY_RUN.with(Cell::get)
}

pub(super) fn would_have_succeeded() -> KmsError {
    KmsError::DryRunOperation(DRY_RUN_MESSAGE.into())
}

/// For the code that is about to write the store: refuses in a dry run.
pub(super) fn refuse_write() -> Result<()> {
    if active() {
        Err(would_have_succeeded())
    } else {
        Ok(())
    }
}

struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        DRY_RUN.with(|d| d.set(self.0));
    }
}

impl LocalKms {
    /// Runs `call`, one operation of this `LocalKms`, as a dry run: every
    /// check it makes (validation, key state, key policy) still refuses
    /// with its own exception; if none does, the answer is
    /// DryRunOperationException, no key usage is recorded, nothing is
    /// written to the store, and the audit log records the outcome
    /// `DryRunOperationException`.
    pub fn dry_run<T>(&self, call: impl FnOnce() -> Result<T>) -> Result<T> {
        let _restore = Restore(DRY_RUN.with(|d| d.replace(true)));
        match call() {
            // Also for an operation that does not pass through `run`.
            Ok(_) => Err(would_have_succeeded()),
            Err(e) => Err(e),
        }
    }
}
