//! Amazon EC2 Auto Scaling through aws-sdk-rust: a workload is an Auto
//! Scaling group. Headroom sets its desired capacity and bounds, keeps a warm
//! pool for shadow capacity, changes the instance type of its launch template
//! (vertical scaling), and chooses spot or on-demand capacity from the spot
//! price history (a mixed instances policy).
//!
//! Tenancy: a group is only commanded when it carries the tag
//! `headroom:organization` with the organisation's id, so one customer can
//! never steer another's group even through a shared account.
//!
//! AWS rules coded for (the test peer is laxer): a warm pool cannot coexist
//! with a mixed instances policy, so spot-enabled groups keep no warm pool;
//! the instance type of running instances is not changed in place (new
//! launches use the new launch template version).

use aws_sdk_autoscaling::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_autoscaling::types::{
    AutoScalingGroup, InstancesDistribution, LaunchTemplate, LaunchTemplateSpecification,
    MixedInstancesPolicy, WarmPoolState,
};
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};
use std::collections::HashMap;

use super::{Desired, InForce, Provider, ProviderError, on_demand_percent};

/// The tag naming the organisation a group belongs to.
pub const TENANT_TAG: &str = "headroom:organization";

/// Groups per DescribeAutoScalingGroups call (AWS's largest page).
const GROUPS_PER_CALL: usize = 100;

/// Spot prices are asked for Linux instances (the price AWS lists first).
const PRODUCT: &str = "Linux/UNIX";

/// AWS error codes that say "try again shortly".
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "ResourceContention",
    "ScalingActivityInProgress",
];

/// One group to read in [`Aws::in_force_many`].
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub tenant: &'a str,
    pub name: &'a str,
    /// Whether to read the launch template's instance type (one more call
    /// per template version; only workloads that manage the type need it).
    pub instance_type: bool,
}

#[derive(Debug, Clone)]
pub struct Aws {
    autoscaling: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
}

/// Where the SDK should connect; everything else (credentials, retries)
/// comes from the SDK's standard environment and files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// Region; the SDK's own chain (`AWS_REGION`, profile) when `None`.
    pub region: Option<String>,
    /// A different endpoint (a test peer, a VPC endpoint).
    pub endpoint_url: Option<String>,
}

/// The launch template a group launches from, and how the group names it.
#[derive(Debug, Clone, PartialEq)]
struct Template {
    id: String,
    /// As the group names it: a number, `$Latest` or `$Default`.
    version: String,
    /// Whether the group names it inside a mixed instances policy.
    mixed: bool,
    on_demand_percent: Option<u32>,
}

fn sdk_error<E, R>(what: &str, e: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            let code = err.code().unwrap_or("Unknown");
            ProviderError {
                message: format!(
                    "AWS {what}: {code}: {}",
                    err.message().unwrap_or("no message")
                ),
                transient: TRANSIENT_CODES.contains(&code),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ProviderError {
                message: format!(
                    "AWS {what}: {}",
                    aws_sdk_autoscaling::error::DisplayErrorContext(&e)
                ),
                transient: true,
            }
        }
        _ => ProviderError::permanent(format!(
            "AWS {what}: {}",
            aws_sdk_autoscaling::error::DisplayErrorContext(&e)
        )),
    }
}

fn count(n: u32) -> Result<i32, ProviderError> {
    i32::try_from(n).map_err(|_| ProviderError::permanent(format!("{n} is too many instances")))
}

fn uncount(n: Option<i32>) -> Option<u32> {
    n.and_then(|n| u32::try_from(n).ok())
}

impl Aws {
    pub async fn connect(settings: &AwsSettings) -> Self {
        Self::from_sdk_config(&Self::loader(settings).load().await)
    }

    /// The SDK's configuration loader for `settings`, with HTTPS on rustls
    /// and ring; the rest (credentials, retries) is the SDK's standard chain.
    pub fn loader(settings: &AwsSettings) -> aws_config::ConfigLoader {
        use aws_smithy_http_client::tls::{Provider as Tls, rustls_provider::CryptoMode};
        let https = aws_smithy_http_client::Builder::new()
            .tls_provider(Tls::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https);
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        loader
    }

    /// From a configuration built elsewhere (explicit credentials, say).
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        Self::from_clients(
            aws_sdk_autoscaling::Client::new(config),
            aws_sdk_ec2::Client::new(config),
        )
    }

    /// From clients configured elsewhere (with interceptors, say).
    pub fn from_clients(
        autoscaling: aws_sdk_autoscaling::Client,
        ec2: aws_sdk_ec2::Client,
    ) -> Self {
        Self { autoscaling, ec2 }
    }

    /// The tenant's group, or why it cannot be commanded.
    async fn group(&self, tenant: &str, name: &str) -> Result<AutoScalingGroup, ProviderError> {
        let found = self.groups(&[name]).await?;
        Self::owned(tenant, name, found.get(name)).cloned()
    }

    /// The groups among `names` that exist, by name: one
    /// DescribeAutoScalingGroups call per hundred names (and per page).
    async fn groups(
        &self,
        names: &[&str],
    ) -> Result<HashMap<String, AutoScalingGroup>, ProviderError> {
        let mut out = HashMap::with_capacity(names.len());
        for chunk in names.chunks(GROUPS_PER_CALL) {
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .autoscaling
                    .describe_auto_scaling_groups()
                    .set_auto_scaling_group_names(Some(
                        chunk.iter().map(|n| (*n).to_owned()).collect(),
                    ))
                    .max_records(GROUPS_PER_CALL as i32)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeAutoScalingGroups", e))?;
                for g in page.auto_scaling_groups() {
                    if let Some(n) = g.auto_scaling_group_name() {
                        out.insert(n.to_owned(), g.clone());
                    }
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    /// `group` when it exists and is tagged for `tenant`, or why not.
    fn owned<'g>(
        tenant: &str,
        name: &str,
        group: Option<&'g AutoScalingGroup>,
    ) -> Result<&'g AutoScalingGroup, ProviderError> {
        let group = group.ok_or_else(|| {
            ProviderError::permanent(format!("no Auto Scaling group named {name:?}"))
        })?;
        let owner = group
            .tags()
            .iter()
            .find(|t| t.key() == Some(TENANT_TAG))
            .and_then(|t| t.value());
        if owner != Some(tenant) {
            return Err(ProviderError::permanent(format!(
                "the Auto Scaling group {name:?} is not tagged {TENANT_TAG}={tenant}; \
                 Headroom only commands groups tagged for the organisation"
            )));
        }
        Ok(group)
    }

    /// What is in force for many groups, in `queries`' order, with one
    /// DescribeAutoScalingGroups call per hundred groups (warm pools come
    /// with the groups). A launch template version is described only for
    /// queries that ask for the instance type, once per version.
    pub async fn in_force_many(
        &self,
        queries: &[Query<'_>],
    ) -> Vec<Result<InForce, ProviderError>> {
        let mut names: Vec<&str> = queries.iter().map(|q| q.name).collect();
        names.sort_unstable();
        names.dedup();
        let groups = match self.groups(&names).await {
            Ok(g) => g,
            Err(e) => return vec![Err(e); queries.len()],
        };
        let mut versions: HashMap<(String, String), Result<Option<String>, ProviderError>> =
            HashMap::new();
        let mut out = Vec::with_capacity(queries.len());
        for q in queries {
            let group = match Self::owned(q.tenant, q.name, groups.get(q.name)) {
                Ok(g) => g,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            let template = Self::template(group);
            let instance_type = match (&template, q.instance_type) {
                (Some(t), true) => {
                    let key = (t.id.clone(), t.version.clone());
                    if !versions.contains_key(&key) {
                        let kind = self.template_version(t).await.map(|v| v.1);
                        versions.insert(key.clone(), kind);
                    }
                    match &versions[&key] {
                        Ok(kind) => kind.clone(),
                        Err(e) => {
                            out.push(Err(e.clone()));
                            continue;
                        }
                    }
                }
                _ => None,
            };
            out.push(Ok(Self::in_force_of(group, template, instance_type)));
        }
        out
    }

    /// A described group as [`InForce`].
    fn in_force_of(
        group: &AutoScalingGroup,
        template: Option<Template>,
        instance_type: Option<String>,
    ) -> InForce {
        let mixed = template.as_ref().is_some_and(|t| t.mixed);
        // A mixed instances policy admits no warm pool, so none is reported.
        let warm = (!mixed).then(|| {
            group
                .warm_pool_configuration()
                .and_then(|c| uncount(c.min_size()))
                .unwrap_or(0)
        });
        InForce {
            instances: uncount(group.desired_capacity()),
            warm,
            bounds: uncount(group.min_size()).zip(uncount(group.max_size())),
            memory_bytes: None,
            network_bits_per_sec: None,
            instance_type,
            on_demand_percent: template.and_then(|t| t.on_demand_percent),
        }
    }

    fn template(group: &AutoScalingGroup) -> Option<Template> {
        let (spec, mixed, on_demand) = match group.mixed_instances_policy() {
            Some(m) => (
                m.launch_template()?.launch_template_specification()?,
                true,
                m.instances_distribution()
                    .and_then(|d| d.on_demand_percentage_above_base_capacity())
                    // AWS's default share is all on demand.
                    .map_or(Some(100), |p| u32::try_from(p).ok()),
            ),
            None => (group.launch_template()?, false, None),
        };
        Some(Template {
            id: spec.launch_template_id()?.to_owned(),
            version: spec.version().unwrap_or("$Default").to_owned(),
            mixed,
            on_demand_percent: on_demand,
        })
    }

    /// The version number and instance type a template version names.
    async fn template_version(&self, t: &Template) -> Result<(i64, Option<String>), ProviderError> {
        let out = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(&t.id)
            .versions(&t.version)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeLaunchTemplateVersions", e))?;
        let v = out.launch_template_versions().first().ok_or_else(|| {
            ProviderError::permanent(format!(
                "launch template {} has no version {}",
                t.id, t.version
            ))
        })?;
        let number = v.version_number().unwrap_or_default();
        let kind = v
            .launch_template_data()
            .and_then(|d| d.instance_type())
            .map(|t| t.as_str().to_owned());
        Ok((number, kind))
    }

    /// A new version of the group's template with `instance_type`, unless the
    /// version in use already has it; returns the version to use.
    async fn ensure_instance_type(
        &self,
        t: &Template,
        instance_type: &str,
        token: &str,
    ) -> Result<Option<String>, ProviderError> {
        let (number, current) = self.template_version(t).await?;
        if current.as_deref() == Some(instance_type) {
            return Ok(None);
        }
        let out = self
            .ec2
            .create_launch_template_version()
            .launch_template_id(&t.id)
            .source_version(number.to_string())
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .instance_type(InstanceType::from(instance_type))
                    .build(),
            )
            // The decision's command id: a retried command makes no second version.
            .client_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("CreateLaunchTemplateVersion", e))?;
        let version = out
            .launch_template_version()
            .and_then(|v| v.version_number())
            .ok_or_else(|| {
                ProviderError::permanent("CreateLaunchTemplateVersion returned no version number")
            })?;
        Ok(Some(version.to_string()))
    }

    async fn delete_warm_pool(&self, name: &str) -> Result<(), ProviderError> {
        self.autoscaling
            .delete_warm_pool()
            .auto_scaling_group_name(name)
            .force_delete(true)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteWarmPool", e))?;
        Ok(())
    }

    /// Spot prices of the last `hours` for `instance_type`, micro-dollars per
    /// instance-hour, every zone.
    pub async fn spot_prices(
        &self,
        instance_type: &str,
        hours: u32,
    ) -> Result<Vec<i64>, ProviderError> {
        let since = chrono::Utc::now().timestamp() - i64::from(hours) * 3600;
        let out = self
            .ec2
            .describe_spot_price_history()
            .instance_types(InstanceType::from(instance_type))
            .product_descriptions(PRODUCT)
            .start_time(aws_sdk_ec2::primitives::DateTime::from_secs(since))
            .max_results(1000)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSpotPriceHistory", e))?;
        Ok(out
            .spot_price_history()
            .iter()
            .filter_map(|p| p.spot_price()?.parse::<f64>().ok())
            .filter(|p| p.is_finite() && *p > 0.0)
            .map(|usd| (usd * 1e6).round() as i64)
            .collect())
    }
}

impl Provider for Aws {
    async fn apply(
        &self,
        tenant: &str,
        name: &str,
        want: &Desired,
        token: &str,
    ) -> Result<(), ProviderError> {
        let group = self.group(tenant, name).await?;
        let template = Self::template(&group);
        let new_version = match (&want.instance_type, &template) {
            (Some(kind), Some(t)) => self.ensure_instance_type(t, kind, token).await?,
            (Some(_), None) => {
                return Err(ProviderError::permanent(format!(
                    "the Auto Scaling group {name:?} has no launch template, so its instance \
                     type cannot be managed"
                )));
            }
            (None, _) => None,
        };
        let becomes_mixed = want.purchase.is_some() && template.as_ref().is_some_and(|t| !t.mixed);
        // The warm pool comes with the group's description.
        let pool = group
            .warm_pool_configuration()
            .map(|c| uncount(c.min_size()).unwrap_or(0));
        if becomes_mixed && pool.is_some() {
            // AWS refuses a mixed instances policy beside a warm pool.
            self.delete_warm_pool(name).await?;
        }
        let mut update = self
            .autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .min_size(count(want.min)?)
            .max_size(count(want.max)?)
            .desired_capacity(count(want.instances)?);
        if let Some(t) = &template {
            let spec = LaunchTemplateSpecification::builder()
                .launch_template_id(&t.id)
                .version(new_version.clone().unwrap_or_else(|| t.version.clone()))
                .build();
            let percent = want
                .purchase
                .as_ref()
                .map(on_demand_percent)
                .or(t.on_demand_percent);
            if want.purchase.is_some() || t.mixed {
                let mut distribution = InstancesDistribution::builder()
                    .spot_allocation_strategy("price-capacity-optimized");
                if let Some(p) = percent {
                    distribution = distribution
                        .on_demand_percentage_above_base_capacity(i32::try_from(p).unwrap_or(100));
                }
                let changed = new_version.is_some() || percent != t.on_demand_percent || !t.mixed;
                if changed {
                    update = update.mixed_instances_policy(
                        MixedInstancesPolicy::builder()
                            .launch_template(
                                LaunchTemplate::builder()
                                    .launch_template_specification(spec)
                                    .build(),
                            )
                            .instances_distribution(distribution.build())
                            .build(),
                    );
                }
            } else if new_version.is_some() {
                update = update.launch_template(spec);
            }
        }
        // Bounds and capacity in one call, so AWS checks them together.
        update
            .send()
            .await
            .map_err(|e| sdk_error("UpdateAutoScalingGroup", e))?;
        let mixed = want.purchase.is_some() || template.as_ref().is_some_and(|t| t.mixed);
        if !mixed {
            if want.warm > 0 && pool != Some(want.warm) {
                self.autoscaling
                    .put_warm_pool()
                    .auto_scaling_group_name(name)
                    .min_size(count(want.warm)?)
                    .pool_state(WarmPoolState::Stopped)
                    .send()
                    .await
                    .map_err(|e| sdk_error("PutWarmPool", e))?;
            } else if want.warm == 0 && pool.is_some() {
                self.delete_warm_pool(name).await?;
            }
        }
        Ok(())
    }

    async fn in_force(&self, tenant: &str, name: &str) -> Result<InForce, ProviderError> {
        let group = self.group(tenant, name).await?;
        let template = Self::template(&group);
        let instance_type = match &template {
            Some(t) => self.template_version(t).await?.1,
            None => None,
        };
        Ok(Self::in_force_of(&group, template, instance_type))
    }
}
