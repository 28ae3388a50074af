//! Opening the run's connections at the configured rate: connect,
//! authenticate, join.

use super::*;

/// Who to open: a URL, a user and a canvas.
pub(super) struct Spec {
    pub(super) url: usize,
    pub(super) user: String,
    pub(super) canvas: usize,
}

pub(super) struct Opened {
    pub(super) ws: Ws,
    pub(super) joined: Joined,
}

/// Results of the connection phase.
#[derive(Default)]
pub(super) struct OpenStats {
    pub(super) failed: u64,
    pub(super) first_error: Option<String>,
    pub(super) connect: Samples,
    pub(super) join: Samples,
}

impl OpenStats {
    pub(super) fn fail(&mut self, e: &anyhow::Error) {
        self.failed += 1;
        self.first_error.get_or_insert_with(|| format!("{e:#}"));
    }
}

pub(super) async fn open_one(
    urls: &[String],
    secret: &str,
    encoding: Encoding,
    canvases: &[CanvasId],
    spec: &Spec,
    resume: Option<(u64, String)>,
) -> anyhow::Result<(Opened, Duration, Duration)> {
    let token = client::token_for(secret, &spec.user)?;
    let t0 = Instant::now();
    let url = &urls[spec.url % urls.len()];
    let mut ws = client::connect(url, &token, encoding)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let connected = t0.elapsed();
    let joined = client::join(&mut ws, encoding, &canvases[spec.canvas], resume).await?;
    Ok((Opened { ws, joined }, connected, t0.elapsed() - connected))
}

/// Opens every spec at the target's connection rate; failed ones are `None`.
pub(super) async fn open_all(
    target: &Target,
    encoding: Encoding,
    canvases: &Arc<Vec<CanvasId>>,
    specs: Vec<Spec>,
    bar: &ProgressBar,
) -> anyhow::Result<(Vec<Option<Opened>>, OpenStats)> {
    let limiter = Arc::new(Semaphore::new(target.concurrency.max(1)));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(
        1.0 / f64::from(target.connect_rate.max(1)),
    ));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let urls = Arc::new(target.urls.clone());
    let mut attempts = JoinSet::new();
    let n = specs.len();
    for (i, spec) in specs.into_iter().enumerate() {
        ticker.tick().await;
        let permit = limiter.clone().acquire_owned().await?;
        let (urls, canvases, secret) = (urls.clone(), canvases.clone(), target.secret.clone());
        attempts.spawn(async move {
            let r = open_one(&urls, &secret, encoding, &canvases, &spec, None).await;
            drop(permit);
            (i, r)
        });
    }
    let mut opened: Vec<Option<Opened>> = (0..n).map(|_| None).collect();
    let mut stats = OpenStats::default();
    while let Some(done) = attempts.join_next().await {
        let (i, result) = done?;
        bar.inc(1);
        match result {
            Ok((o, connect, join)) => {
                stats.connect.record(connect);
                stats.join.record(join);
                opened[i] = Some(o);
            }
            Err(e) => stats.fail(&e),
        }
    }
    Ok((opened, stats))
}
