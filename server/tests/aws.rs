//! The AWS provider against `moto_server` (AWS's Auto Scaling and EC2 APIs,
//! started on loopback by `./dev test`): the controller's decisions become a
//! group's desired capacity, bounds, warm pool, launch-template instance type
//! and spot share; drift made behind Headroom's back is repaired; a group not
//! tagged for the organisation is never touched; a retried command makes no
//! second launch-template version; an unreachable AWS gives a recorded
//! failed decision with the fleet on record unchanged; a tick reads a
//! hundred groups with one call.

mod common;

use aws_sdk_autoscaling::types::Tag;
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};
use common::{Backend, Options, TestApp, expect_error};
use headroom_jobs::allocate::{STEP_MS, allocate_all};
use headroom_jobs::providers::aws::{Aws, AwsSettings, Query, TENANT_TAG};
use headroom_jobs::providers::{Desired, Provider, Providers};
use reqwest::Method as M;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const PASSWORD: &str = "correct horse battery staple";

/// moto_server, when the test command started it: `None` (and said so) otherwise.
fn moto() -> Option<String> {
    match std::env::var("HEADROOM_TEST_MOTO_URL") {
        Ok(url) => Some(url.trim_end_matches('/').to_owned()),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and HEADROOM_TEST_MOTO_URL is unset: run the tests with ./dev test")
        }
        Err(_) => {
            eprintln!("\n*** SKIPPED: moto_server is not running (./dev test starts it) ***\n");
            None
        }
    }
}

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    Aws::loader(&AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.into()),
    })
    .credentials_provider(aws_sdk_autoscaling::config::Credentials::new(
        "testing", "testing", None, None, "test",
    ))
    .load()
    .await
}

struct Peer {
    asg: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    /// Makes names unique: the peer is shared by every test of the run.
    run: String,
}

impl Peer {
    /// A launch template (t3.small) and a group of 1 (bounds 1..5) from it,
    /// tagged for `owner`; returns the group's name and the template's id.
    async fn group(&self, name: &str, owner: &str) -> (String, String) {
        let name = format!("{name}-{}", self.run);
        let lt = self
            .ec2
            .create_launch_template()
            .launch_template_name(format!("lt-{name}"))
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id("ami-12c6146b")
                    .instance_type(InstanceType::T3Small)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let id = lt
            .launch_template()
            .unwrap()
            .launch_template_id()
            .unwrap()
            .to_owned();
        self.asg
            .create_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .launch_template(
                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                    .launch_template_id(&id)
                    .version("$Latest")
                    .build(),
            )
            .min_size(1)
            .max_size(5)
            .desired_capacity(1)
            .availability_zones("us-east-1a")
            .tags(
                Tag::builder()
                    .key(TENANT_TAG)
                    .value(owner)
                    .propagate_at_launch(false)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        (name, id)
    }

    async fn describe(&self, name: &str) -> aws_sdk_autoscaling::types::AutoScalingGroup {
        self.asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .unwrap()
            .auto_scaling_groups()[0]
            .clone()
    }

    async fn warm_pool(&self, name: &str) -> Option<i32> {
        self.asg
            .describe_warm_pool()
            .auto_scaling_group_name(name)
            .send()
            .await
            .unwrap()
            .warm_pool_configuration()
            .and_then(|c| c.min_size())
    }

    /// Every version of a template: (number, instance type).
    async fn versions(&self, template: &str) -> Vec<(i64, String)> {
        self.ec2
            .describe_launch_template_versions()
            .launch_template_id(template)
            .send()
            .await
            .unwrap()
            .launch_template_versions()
            .iter()
            .map(|v| {
                (
                    v.version_number().unwrap_or_default(),
                    v.launch_template_data()
                        .and_then(|d| d.instance_type())
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }
}

async fn send(
    app: &TestApp,
    key: &str,
    method: M,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// The app with the `aws` provider allowed (no worker: ticks are called
/// directly), and the providers a tick gets: AWS at `config`'s endpoint.
async fn aws_app(config: &aws_config::SdkConfig) -> (TestApp, Providers) {
    aws_app_with(Aws::from_sdk_config(config)).await
}

async fn aws_app_with(aws: Aws) -> (TestApp, Providers) {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            with_worker: false,
            env: vec![("HEADROOM_AWS_PROVIDER", "1".to_owned())],
        },
    )
    .await
    .unwrap();
    let providers = Providers {
        cgroups: None,
        aws: Some(Ok(aws)),
    };
    (app, providers)
}

/// 250 % CPU over the last 20 minutes on each workload (2.5 instances at
/// 100 per instance); returns now.
async fn demand(app: &TestApp, key: &str, workloads: &[&str]) -> i64 {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let points: Vec<Value> = workloads
        .iter()
        .flat_map(|w| {
            (0..20).map(move |i| {
                json!({ "workload": w, "metric": "cpu", "timestamp": now_ms / 1000 - i * 60, "value": 250.0 })
            })
        })
        .collect();
    let res = send(app, key, M::POST, "/api/v1/metrics", Some(json!(points))).await;
    assert_eq!(res.status(), 200);
    now_ms
}

/// The newest decision for `workload`.
async fn last_decision(app: &TestApp, key: &str, workload: &str) -> Value {
    let path = format!("/api/v1/allocation-decisions?workload={workload}");
    let list: Vec<Value> = send(app, key, M::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    list.into_iter()
        .find(|d| d["workload"] == workload)
        .unwrap_or_else(|| panic!("no decision for {workload}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_provider_drives_auto_scaling_groups() {
    let Some(endpoint) = moto() else { return };
    let config = sdk_config(&endpoint).await;
    let peer = Peer {
        asg: aws_sdk_autoscaling::Client::new(&config),
        ec2: aws_sdk_ec2::Client::new(&config),
        run: headroom_store::new_id()[20..].to_lowercase(),
    };
    let (app, providers) = aws_app(&config).await;
    let (_owner, info, key) =
        common::org_with_key(&app, "Aws", PASSWORD, &["ingest", "read", "write"]).await;
    let org = info["organization"]["id"].as_str().unwrap().to_owned();
    let (web, web_template) = peer.group("web", &org).await;
    let (batch, batch_template) = peer.group("batch", &org).await;
    let (foreign, _) = peer.group("foreign", "someone-else").await;

    // 2.5 instances of demand on each workload: 4 at a 70 % target.
    let now_ms = demand(&app, &key, &["web", "batch", "stolen"]).await;

    let base = json!({
        "metric": "cpu", "units_per_instance": 100.0, "mode": "on",
        "min_instances": 1, "max_instances": 8, "provider": "aws", "provider_ref": web,
    });
    // Settings that cannot work are refused with the reason.
    for (field, value, needle) in [
        ("memory_mib_per_instance", json!(512), "cgroup"),
        (
            "network_mbit_per_instance",
            json!(100),
            "network_mbit_per_instance applies",
        ),
        ("instance_type", json!("T3 large"), "instance_type"),
        ("allow_spot", json!(true), "allow_spot needs"),
        (
            "on_demand_usd_per_hour",
            json!(-1.0),
            "on_demand_usd_per_hour",
        ),
        ("provider_ref", json!(""), "provider_ref"),
    ] {
        let mut body = base.clone();
        body[field] = value;
        let msg = expect_error(
            send(
                &app,
                &key,
                M::PUT,
                "/api/v1/workloads/web/allocation",
                Some(body),
            )
            .await,
            422,
        )
        .await;
        assert!(msg.contains(needle), "{field}: {msg}");
    }
    let mut body = base.clone();
    body["instance_type"] = json!("t3.large");
    let res = send(
        &app,
        &key,
        M::PUT,
        "/api/v1/workloads/web/allocation",
        Some(body),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let mut body = base.clone();
    body["provider_ref"] = json!(batch);
    body["instance_type"] = json!("t3.small");
    body["allow_spot"] = json!(true);
    body["on_demand_usd_per_hour"] = json!(0.0208);
    let res = send(
        &app,
        &key,
        M::PUT,
        "/api/v1/workloads/batch/allocation",
        Some(body),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let mut body = base.clone();
    body["provider_ref"] = json!(foreign);
    let res = send(
        &app,
        &key,
        M::PUT,
        "/api/v1/workloads/stolen/allocation",
        Some(body),
    )
    .await;
    assert_eq!(res.status(), 200);

    // The spot workload's group has a warm pool, which AWS does not allow
    // beside the mixed instances policy spot needs.
    peer.asg
        .put_warm_pool()
        .auto_scaling_group_name(&batch)
        .min_size(1)
        .send()
        .await
        .unwrap();

    // One tick: every workload decides 4 instances and commands its group.
    let summary = allocate_all(&app.db, &providers, now_ms).await.unwrap();
    assert_eq!(summary.decided, 3, "{summary:?}");
    let d = last_decision(&app, &key, "web").await;
    assert_eq!(
        (d["status"].as_str(), d["after"].as_i64()),
        (Some("applied"), Some(4)),
        "{d}"
    );
    let g = peer.describe(&web).await;
    assert_eq!(
        (g.desired_capacity(), g.min_size(), g.max_size()),
        (Some(4), Some(1), Some(8))
    );
    // Vertical: a new template version with the type, and the group uses it.
    let versions = peer.versions(&web_template).await;
    assert_eq!(versions.len(), 2, "{versions:?}");
    let newest = versions.iter().max().unwrap();
    assert_eq!(newest.1, "t3.large");
    assert_eq!(
        g.launch_template().and_then(|t| t.version()),
        Some(newest.0.to_string().as_str())
    );
    // Shadow capacity: the warm pool is what the decision asked for.
    let warm = d["warm"].as_i64().unwrap();
    assert_eq!(
        peer.warm_pool(&web).await.map(i64::from),
        (warm > 0).then_some(warm)
    );

    // Spot: moto's spot prices are far below the on-demand price given.
    let d = last_decision(&app, &key, "batch").await;
    assert_eq!(d["status"], "applied", "{d}");
    assert!(
        d["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("bought as spot"),
        "{d}"
    );
    let g = peer.describe(&batch).await;
    let mixed = g
        .mixed_instances_policy()
        .expect("a mixed instances policy");
    assert_eq!(
        mixed
            .instances_distribution()
            .and_then(|d| d.on_demand_percentage_above_base_capacity()),
        Some(0)
    );
    assert_eq!(g.desired_capacity(), Some(4));
    assert_eq!(
        peer.versions(&batch_template).await.len(),
        1,
        "type unchanged"
    );
    assert_eq!(
        peer.warm_pool(&batch).await,
        None,
        "warm pool removed first"
    );

    // Someone else's group: refused, recorded, untouched.
    let d = last_decision(&app, &key, "stolen").await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(
        d["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("is not tagged headroom:organization"),
        "{d}"
    );
    assert_eq!(peer.describe(&foreign).await.desired_capacity(), Some(1));
    let s: Value = send(
        &app,
        &key,
        M::GET,
        "/api/v1/workloads/stolen/allocation",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(s["instances"], 1, "a failed command leaves the record: {s}");

    // Drift behind Headroom's back is repaired at the next tick.
    peer.asg
        .update_auto_scaling_group()
        .auto_scaling_group_name(&web)
        .min_size(0)
        .max_size(20)
        .desired_capacity(2)
        .send()
        .await
        .unwrap();
    allocate_all(&app.db, &providers, now_ms + STEP_MS)
        .await
        .unwrap();
    let d = last_decision(&app, &key, "web").await;
    let detail = d["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("repaired drift") && detail.contains("2 instances in force, 4 on record"),
        "{d}"
    );
    assert!(
        detail.contains("bounds 0..20 in force, 1..8 on record"),
        "{d}"
    );
    let g = peer.describe(&web).await;
    assert_eq!(
        (g.desired_capacity(), g.min_size(), g.max_size()),
        (d["after"].as_i64().map(|n| n as i32), Some(1), Some(8)),
        "{d}"
    );

    // The same command twice (a retry) makes no second template version.
    let aws = providers.aws().unwrap();
    let want = Desired {
        instances: 3,
        warm: 0,
        min: 1,
        max: 8,
        memory_bytes: None,
        io_weight: None,
        network_bits_per_sec: None,
        instance_type: Some("t3.xlarge".into()),
        purchase: None,
    };
    aws.apply(&org, &web, &want, "command-1").await.unwrap();
    aws.apply(&org, &web, &want, "command-1").await.unwrap();
    let versions = peer.versions(&web_template).await;
    assert_eq!(versions.len(), 3, "{versions:?}");
    let f = aws.in_force(&org, &web).await.unwrap();
    assert!(want.drift(&f).is_empty(), "{f:?}");
    // Turning a group with a warm pool to spot removes the pool first (AWS
    // allows no warm pool beside a mixed instances policy).
    let (conv, _) = peer.group("conv", &org).await;
    peer.asg
        .put_warm_pool()
        .auto_scaling_group_name(&conv)
        .min_size(2)
        .send()
        .await
        .unwrap();
    let spot = Desired {
        instance_type: None,
        purchase: Some(headroom_core::allocate::spot::Purchase::Spot {
            expected_saving: 0.5,
        }),
        ..want.clone()
    };
    aws.apply(&org, &conv, &spot, "command-2").await.unwrap();
    assert_eq!(peer.warm_pool(&conv).await, None);
    let f = aws.in_force(&org, &conv).await.unwrap();
    assert_eq!(
        (f.on_demand_percent, f.instances),
        (Some(0), Some(3)),
        "{f:?}"
    );
    // Another organisation cannot read it either.
    let e = aws.in_force("someone-else", &web).await.unwrap_err();
    assert!(!e.transient && e.message.contains("not tagged"), "{e:?}");
}

/// AWS unreachable: the command is retried, then recorded as failed with the
/// fleet on record unchanged; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_aws_gives_a_failed_decision() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = sdk_config(&format!("http://127.0.0.1:{port}")).await;
    let (app, providers) = aws_app(&config).await;
    let (_owner, _, key) =
        common::org_with_key(&app, "Down", PASSWORD, &["ingest", "read", "write"]).await;
    let now_ms = demand(&app, &key, &["web"]).await;
    let res = send(
        &app,
        &key,
        M::PUT,
        "/api/v1/workloads/web/allocation",
        Some(json!({
            "metric": "cpu", "units_per_instance": 100.0, "mode": "on",
            "min_instances": 1, "max_instances": 8, "provider": "aws", "provider_ref": "web",
        })),
    )
    .await;
    assert_eq!(res.status(), 200);
    allocate_all(&app.db, &providers, now_ms).await.unwrap();
    let d = last_decision(&app, &key, "web").await;
    assert_eq!(d["status"], "failed", "{d}");
    let detail = d["detail"].as_str().unwrap_or_default();
    // Connection failures are transient: tried again before giving up.
    assert!(detail.contains("4 attempts"), "{d}");
    let s: Value = send(&app, &key, M::GET, "/api/v1/workloads/web/allocation", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["instances"], 1, "{s}");
}

/// Without `HEADROOM_AWS_PROVIDER` the provider is refused with the setting to turn on.
#[tokio::test]
async fn aws_is_refused_where_not_enabled() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let (_owner, _, key) = common::org_with_key(&app, "Off", PASSWORD, &["write"]).await;
    let msg = expect_error(
        send(
            &app,
            &key,
            M::PUT,
            "/api/v1/workloads/web/allocation",
            Some(json!({
                "metric": "cpu", "units_per_instance": 100.0, "mode": "on",
                "min_instances": 1, "max_instances": 8, "provider": "aws", "provider_ref": "web",
            })),
        )
        .await,
        422,
    )
    .await;
    assert!(msg.contains("HEADROOM_AWS_PROVIDER"), "{msg}");
}

/// The AWS API actions a client sent, in order (Query protocol: the body's
/// `Action=`).
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl aws_sdk_autoscaling::config::Intercept for Calls {
    fn name(&self) -> &'static str {
        "calls"
    }

    fn read_before_transmit(
        &self,
        ctx: &aws_sdk_autoscaling::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_autoscaling::config::RuntimeComponents,
        _: &mut aws_sdk_autoscaling::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let body = String::from_utf8_lossy(ctx.request().body().bytes().unwrap_or_default());
        if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
            self.0.lock().unwrap().push(action.to_owned());
        }
        Ok(())
    }
}

/// A tick reads every AWS workload's group in batches of a hundred (warm
/// pools with them), not one DescribeAutoScalingGroups per workload; what it
/// reads is what the one-group read gives; a missing or foreign group fails
/// its own workload only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_reads_a_hundred_groups_a_call() {
    let Some(endpoint) = moto() else { return };
    let config = sdk_config(&endpoint).await;
    let calls = Calls::default();
    let aws = Aws::from_clients(
        aws_sdk_autoscaling::Client::from_conf(
            aws_sdk_autoscaling::config::Builder::from(&config)
                .interceptor(calls.clone())
                .build(),
        ),
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&config)
                .interceptor(calls.clone())
                .build(),
        ),
    );
    let peer = Peer {
        asg: aws_sdk_autoscaling::Client::new(&config),
        ec2: aws_sdk_ec2::Client::new(&config),
        run: headroom_store::new_id()[20..].to_lowercase(),
    };
    let (app, providers) = aws_app_with(aws).await;
    let (_owner, info, key) =
        common::org_with_key(&app, "Many", PASSWORD, &["ingest", "read", "write"]).await;
    let org = info["organization"]["id"].as_str().unwrap().to_owned();

    const N: usize = 120;
    let mut groups = Vec::new();
    for i in 0..N {
        groups.push(peer.group(&format!("g{i}"), &org).await.0);
    }
    let (alien, _) = peer.group("alien", "someone-else").await;
    let workloads: Vec<String> = (0..N).map(|i| format!("w{i}")).collect();
    let mut all: Vec<&str> = workloads.iter().map(String::as_str).collect();
    all.extend(["ghost", "alien"]);
    let now_ms = demand(&app, &key, &all).await;
    let put = |workload: String, group: String, mode: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            let res = send(
                app,
                key,
                M::PUT,
                &format!("/api/v1/workloads/{workload}/allocation"),
                Some(json!({
                    "metric": "cpu", "units_per_instance": 100.0, "mode": mode,
                    "min_instances": 1, "max_instances": 8, "provider": "aws",
                    "provider_ref": group,
                })),
            )
            .await;
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }
    };
    for (w, g) in workloads.iter().zip(&groups) {
        put(w.clone(), g.clone(), "on").await;
    }
    put("ghost".into(), format!("ghost-{}", peer.run), "on").await;
    put("alien".into(), alien.clone(), "on").await;

    // The first tick sizes every fleet (2.5 instances of demand: 4).
    let s = allocate_all(&app.db, &providers, now_ms - STEP_MS)
        .await
        .unwrap();
    assert_eq!((s.decided, s.changed), (N + 2, N + 2), "{s:?}");
    assert_eq!(peer.describe(&groups[7]).await.desired_capacity(), Some(4));
    for (w, why) in [
        ("ghost", "no Auto Scaling group named"),
        ("alien", "is not tagged"),
    ] {
        let d = last_decision(&app, &key, w).await;
        assert_eq!(d["status"], "failed", "{d}");
        assert!(
            d["detail"].as_str().unwrap_or_default().contains(why),
            "{d}"
        );
    }
    assert_eq!(peer.describe(&alien).await.desired_capacity(), Some(1));

    // The one-group read and the batch agree, warm pool and instance type
    // included.
    peer.asg
        .put_warm_pool()
        .auto_scaling_group_name(&groups[3])
        .min_size(2)
        .send()
        .await
        .unwrap();
    let aws = providers.aws().unwrap();
    let queries: Vec<Query<'_>> = groups[..5]
        .iter()
        .map(|g| Query {
            tenant: &org,
            name: g,
            instance_type: true,
        })
        .chain([Query {
            tenant: "someone-else",
            name: &groups[0],
            instance_type: false,
        }])
        .collect();
    let batch = aws.in_force_many(&queries).await;
    for (q, b) in queries[..5].iter().zip(&batch) {
        assert_eq!(
            b.as_ref().unwrap(),
            &aws.in_force(q.tenant, q.name).await.unwrap()
        );
    }
    let f = batch[3].as_ref().unwrap();
    assert_eq!(
        (f.warm, f.instances, f.instance_type.as_deref()),
        (Some(2), Some(4), Some("t3.small")),
        "{f:?}"
    );
    assert!(
        batch[5]
            .as_ref()
            .unwrap_err()
            .message
            .contains("not tagged")
    );
    peer.asg
        .delete_warm_pool()
        .auto_scaling_group_name(&groups[3])
        .force_delete(true)
        .send()
        .await
        .unwrap();

    // The next tick, with one group drifted: N groups read in two calls, one
    // repair (its describe and its update), nothing else.
    put("ghost".into(), format!("ghost-{}", peer.run), "off").await;
    put("alien".into(), alien.clone(), "off").await;
    peer.asg
        .update_auto_scaling_group()
        .auto_scaling_group_name(&groups[11])
        .desired_capacity(2)
        .send()
        .await
        .unwrap();
    calls.take();
    let s = allocate_all(&app.db, &providers, now_ms).await.unwrap();
    assert_eq!(s.decided, N, "{s:?}");
    let sent = calls.take();
    let count = |action: &str| sent.iter().filter(|a| *a == action).count();
    assert_eq!(count("DescribeAutoScalingGroups"), 3, "{sent:?}");
    assert_eq!(count("UpdateAutoScalingGroup"), 1, "{sent:?}");
    assert_eq!(sent.len(), 4, "{sent:?}");
    let d = last_decision(&app, &key, "w11").await;
    assert!(
        d["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("2 instances in force, 4 on record"),
        "{d}"
    );
    assert_eq!(peer.describe(&groups[11]).await.desired_capacity(), Some(4));

    // The same slot ticked again (a retried job) decides nothing new, but a
    // drift it repairs is noted on the slot's decision.
    peer.asg
        .update_auto_scaling_group()
        .auto_scaling_group_name(&groups[12])
        .desired_capacity(1)
        .send()
        .await
        .unwrap();
    let s = allocate_all(&app.db, &providers, now_ms).await.unwrap();
    assert_eq!((s.decided, s.repeated), (0, N), "{s:?}");
    assert_eq!(peer.describe(&groups[12]).await.desired_capacity(), Some(4));
    let d = last_decision(&app, &key, "w12").await;
    assert!(
        d["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("retried tick: repaired drift: 1 instances in force, 4 on record"),
        "{d}"
    );
}
