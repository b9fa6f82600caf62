//! Server-wide bounds on expensive work (ffmpeg runs, clips being made): a
//! fixed number of places, waited for without blocking a core, each given
//! back when its holder is dropped (also when the request that waited for
//! it goes away). Shared by every core.

use std::sync::OnceLock;

/// A fixed number of places.
pub(crate) struct Places {
    count: usize,
    tokens: OnceLock<(flume::Sender<()>, flume::Receiver<()>)>,
}

impl Places {
    pub(crate) const fn new(count: usize) -> Places {
        Places {
            count,
            tokens: OnceLock::new(),
        }
    }

    fn tokens(&self) -> &(flume::Sender<()>, flume::Receiver<()>) {
        self.tokens.get_or_init(|| {
            let (tx, rx) = flume::bounded(self.count);
            for _ in 0..self.count {
                let _ = tx.try_send(());
            }
            (tx, rx)
        })
    }

    /// A place, once one is free.
    pub(crate) async fn take(&'static self) -> Place {
        let _ = self.tokens().1.recv_async().await;
        Place(self)
    }
}

/// A place taken, given back when dropped.
pub(crate) struct Place(&'static Places);

impl Drop for Place {
    fn drop(&mut self) {
        let _ = self.0.tokens().0.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::Places;

    static TWO: Places = Places::new(2);

    #[test]
    fn places_are_given_back_when_dropped() {
        futures_lite::future::block_on(async {
            let a = TWO.take().await;
            let _b = TWO.take().await;
            // Both taken: a third waits until one is dropped.
            assert!(TWO.tokens().1.is_empty());
            drop(a);
            let _c = TWO.take().await;
            assert!(TWO.tokens().1.is_empty());
        });
    }
}
