//! Churn: connect, join, leave and disconnect at a rate beside the load.

use super::open::{Spec, open_one};
use super::*;

use crate::report::ChurnStats;

/// Churn: connect, join, leave, disconnect at a steady rate until `until`.
pub(super) async fn churn_task(
    target: Target,
    encoding: Encoding,
    canvases: Arc<Vec<CanvasId>>,
    per_sec: f64,
    until: Instant,
) -> ChurnStats {
    let stats = Arc::new(Mutex::new(ChurnStats::default()));
    let limiter = Arc::new(Semaphore::new(target.concurrency.max(1)));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec.max(0.001)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let urls = Arc::new(target.urls.clone());
    let mut cycles = JoinSet::new();
    for i in 0usize.. {
        ticker.tick().await;
        if Instant::now() >= until {
            break;
        }
        let Ok(permit) = limiter.clone().acquire_owned().await else {
            break;
        };
        let (urls, canvases, secret, stats) = (
            urls.clone(),
            canvases.clone(),
            target.secret.clone(),
            stats.clone(),
        );
        cycles.spawn(async move {
            let spec = Spec {
                url: i,
                user: format!("lt-c{i}"),
                canvas: i % canvases.len(),
            };
            let t0 = Instant::now();
            let result = async {
                let (mut o, _, _) =
                    open_one(&urls, &secret, encoding, &canvases, &spec, None).await?;
                client::leave(&mut o.ws, encoding, &canvases[spec.canvas]).await?;
                o.ws.close(None).await?;
                anyhow::Ok(())
            }
            .await;
            drop(permit);
            let mut s = stats.lock();
            match result {
                Ok(()) => {
                    s.cycles += 1;
                    s.latency.record(t0.elapsed());
                }
                Err(e) => {
                    s.failed += 1;
                    s.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        });
    }
    while cycles.join_next().await.is_some() {}
    let mut s = std::mem::take(&mut *stats.lock());
    s.cycle_summary = s.latency.summary();
    s
}
