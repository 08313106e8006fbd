//! scheduler controller (stub).

use futures::future::BoxFuture;

use crate::{Informers, Shared};

/// Registers handlers and returns the controller loop.
pub(crate) fn setup(_inf: &mut Informers, _shared: &Shared) -> BoxFuture<'static, ()> {
    Box::pin(futures::future::pending())
}
