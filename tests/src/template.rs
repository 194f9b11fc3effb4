//! `infra/template.yaml` as the tests see it: its state-machine definitions
//! rendered with their `DefinitionSubstitutions`, and its IAM policies, with
//! the intrinsic functions resolved against a local context. The tests run
//! and check what deploys, not a copy of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::stack::{ACCOUNT_ID, REGION, workspace_root};

/// The template's path.
pub fn template_path() -> PathBuf {
    workspace_root().join("infra/template.yaml")
}

/// Values the template's `Ref`, `Fn::GetAtt` and `Fn::Sub` resolve to.
#[derive(Debug, Clone)]
pub struct Context {
    /// Parameter values; the template's defaults unless overridden.
    pub parameters: HashMap<String, String>,
    /// `Logical` (for Ref) and `Logical.Attribute` (for GetAtt) of resources.
    pub resources: HashMap<String, String>,
    /// `AWS::StackName`.
    pub stack_name: String,
}

impl Context {
    /// Overrides a parameter.
    pub fn parameter(mut self, name: &str, value: &str) -> Self {
        self.parameters.insert(name.into(), value.into());
        self
    }

    /// Sets what a resource (`Logical`) or one of its attributes (`Logical.Attr`) resolves to.
    pub fn resource(mut self, name: &str, value: &str) -> Self {
        self.resources.insert(name.into(), value.into());
        self
    }
}

/// One IAM policy statement, resolved.
#[derive(Debug, Clone)]
pub struct Statement {
    /// `Sid`, if any.
    pub sid: Option<String>,
    /// Allow or Deny.
    pub allow: bool,
    /// Principal services (resource policies only).
    pub services: Vec<String>,
    /// Principal AWS accounts or roles (resource policies only).
    pub principals: Vec<String>,
    /// Actions.
    pub actions: Vec<String>,
    /// Resources.
    pub resources: Vec<String>,
    /// `Condition`, as written.
    pub condition: Option<Value>,
}

/// The parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

fn tagged(tag: &str, value: Value) -> Value {
    let name = match tag.trim_start_matches('!') {
        "Ref" => "Ref".to_string(),
        "Condition" => "Condition".to_string(),
        "GetAtt" => {
            // `!GetAtt A.B` is `Fn::GetAtt: [A, B]`.
            if let Value::String(s) = &value
                && let Some((a, b)) = s.split_once('.')
            {
                return single("Fn::GetAtt", Value::Array(vec![a.into(), b.into()]));
            }
            "Fn::GetAtt".to_string()
        }
        other => format!("Fn::{other}"),
    };
    single(&name, value)
}

fn single(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_string(), value);
    Value::Object(map)
}

/// YAML (short-form intrinsics, anchors) to the JSON form of CloudFormation.
fn to_json(value: serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).map_err(|e| e.to_string())?,
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    other => return Err(format!("non-string key {other:?}")),
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => tagged(&t.tag.to_string(), to_json(t.value)?),
    })
}

fn text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a scalar, got {other}")),
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// The `${Name}` placeholders of a text (not `${!Literal}`).
pub fn placeholders(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find('}') {
            if !rest.starts_with('!') {
                found.insert(rest[..end].to_string());
            }
            rest = &rest[end..];
        }
    }
    found
}

/// A definition with SAM's `DefinitionSubstitutions` applied. Fails unless
/// the placeholders of the text and the substitutions are the same set: a
/// missing one would deploy a literal `${X}`, an extra one is dead config.
pub fn render_substituted(definition: &str, substitutions: &BTreeMap<String, String>) -> Result<String, String> {
    let wanted = placeholders(definition);
    let given: BTreeSet<String> = substitutions.keys().cloned().collect();
    if wanted != given {
        return Err(format!(
            "the definition uses {wanted:?} but the substitutions are {given:?}"
        ));
    }
    let pairs: Vec<(&str, String)> = substitutions.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    crate::stack::render_definition(definition, &pairs)
}

impl Template {
    /// Reads and parses `infra/template.yaml`.
    pub fn load() -> Result<Template, String> {
        let path = template_path();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
        Ok(Template { root: to_json(yaml)? })
    }

    /// A context with the parameters' defaults, the local account and region.
    pub fn context(&self, stack_name: &str) -> Context {
        let parameters = self.root["Parameters"]
            .as_object()
            .map(|params| {
                params
                    .iter()
                    .filter_map(|(name, p)| Some((name.clone(), text(p.get("Default")?).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        Context {
            parameters,
            resources: HashMap::new(),
            stack_name: stack_name.to_string(),
        }
    }

    /// A resource's `Properties`.
    pub fn properties(&self, logical: &str) -> Result<&Value, String> {
        self.root["Resources"]
            .get(logical)
            .and_then(|r| r.get("Properties"))
            .ok_or_else(|| format!("the template has no resource {logical} with Properties"))
    }

    /// The logical ids of the resources of a type.
    pub fn resources_of_type(&self, kind: &str) -> Vec<String> {
        self.root["Resources"]
            .as_object()
            .map(|r| {
                r.iter()
                    .filter(|(_, v)| v["Type"] == kind)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn pseudo_or_param(&self, name: &str, ctx: &Context) -> Option<Option<String>> {
        Some(Some(match name {
            "AWS::Partition" => "aws".into(),
            "AWS::Region" => REGION.into(),
            "AWS::AccountId" => ACCOUNT_ID.into(),
            "AWS::StackName" => ctx.stack_name.clone(),
            "AWS::NoValue" => return Some(None),
            other => ctx.parameters.get(other).or_else(|| ctx.resources.get(other))?.clone(),
        }))
    }

    fn condition(&self, name: &str, ctx: &Context) -> Result<bool, String> {
        let body = self.root["Conditions"]
            .get(name)
            .ok_or_else(|| format!("no condition {name}"))?;
        self.truth(body, ctx)
    }

    fn truth(&self, value: &Value, ctx: &Context) -> Result<bool, String> {
        let (op, args) = value
            .as_object()
            .and_then(|m| m.iter().next())
            .ok_or_else(|| format!("not a condition: {value}"))?;
        let list = || args.as_array().cloned().unwrap_or_default();
        match op.as_str() {
            "Condition" => self.condition(&text(args)?, ctx),
            "Fn::Not" => Ok(!self.truth(&list()[0], ctx)?),
            "Fn::And" => list().iter().try_fold(true, |acc, c| Ok(acc && self.truth(c, ctx)?)),
            "Fn::Or" => list().iter().try_fold(false, |acc, c| Ok(acc || self.truth(c, ctx)?)),
            "Fn::Equals" => {
                let items = list();
                let side = |v: &Value| -> Result<String, String> {
                    text(&self.resolve(v, ctx)?.ok_or("Fn::Equals on AWS::NoValue")?)
                };
                Ok(side(&items[0])? == side(&items[1])?)
            }
            other => Err(format!("unsupported condition function {other}")),
        }
    }

    fn substitute(&self, template: &str, vars: &Map<String, Value>, ctx: &Context) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            let end = rest[at..]
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {template:?}"))?;
            let name = &rest[at + 2..at + end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str(&format!("${{{literal}}}"));
            } else if let Some(v) = vars.get(name) {
                out.push_str(&text(&self.resolve(v, ctx)?.ok_or("NoValue in Fn::Sub")?)?);
            } else if let Some(v) = self.pseudo_or_param(name, ctx).flatten() {
                out.push_str(&v);
            } else {
                return Err(format!("Fn::Sub: nothing resolves ${{{name}}} in {template:?}"));
            }
            rest = &rest[at + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Resolves the intrinsic functions in `value`; `None` for `AWS::NoValue`.
    pub fn resolve(&self, value: &Value, ctx: &Context) -> Result<Option<Value>, String> {
        match value {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Some(v) = self.resolve(item, ctx)? {
                        out.push(v);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(map) if map.len() == 1 => {
                let (key, args) = map.iter().next().ok_or("empty map")?;
                match key.as_str() {
                    "Ref" => {
                        let name = text(args)?;
                        match self.pseudo_or_param(&name, ctx) {
                            Some(v) => Ok(v.map(Value::String)),
                            None => Err(format!("Ref {name}: not set in the context")),
                        }
                    }
                    "Fn::GetAtt" => {
                        let parts = strings(Some(args)).join(".");
                        ctx.resources
                            .get(&parts)
                            .map(|v| Some(Value::String(v.clone())))
                            .ok_or_else(|| format!("GetAtt {parts}: not set in the context"))
                    }
                    "Fn::Sub" => {
                        let (template, vars) = match args {
                            Value::String(s) => (s.clone(), Map::new()),
                            Value::Array(items) => (
                                text(&items[0])?,
                                items.get(1).and_then(Value::as_object).cloned().unwrap_or_default(),
                            ),
                            other => return Err(format!("bad Fn::Sub {other}")),
                        };
                        Ok(Some(Value::String(self.substitute(&template, &vars, ctx)?)))
                    }
                    "Fn::Join" => {
                        let items = args.as_array().ok_or("Fn::Join needs a list")?;
                        let delimiter = text(&items[0])?;
                        let parts = match self.resolve(&items[1], ctx)? {
                            Some(Value::Array(parts)) => parts,
                            other => return Err(format!("Fn::Join of {other:?}")),
                        };
                        let parts = parts.iter().map(text).collect::<Result<Vec<_>, _>>()?;
                        Ok(Some(Value::String(parts.join(&delimiter))))
                    }
                    "Fn::Split" => {
                        let items = args.as_array().ok_or("Fn::Split needs a list")?;
                        let delimiter = text(&items[0])?;
                        let whole = text(&self.resolve(&items[1], ctx)?.ok_or("Fn::Split of NoValue")?)?;
                        Ok(Some(Value::Array(
                            whole
                                .split(delimiter.as_str())
                                .map(|s| Value::String(s.into()))
                                .collect(),
                        )))
                    }
                    "Fn::Select" => {
                        let items = args.as_array().ok_or("Fn::Select needs a list")?;
                        let index: usize = text(&items[0])?.parse().map_err(|e| format!("Fn::Select index: {e}"))?;
                        match self.resolve(&items[1], ctx)? {
                            Some(Value::Array(list)) => list
                                .get(index)
                                .cloned()
                                .map(Some)
                                .ok_or_else(|| format!("Fn::Select {index} of {} items", list.len())),
                            other => Err(format!("Fn::Select of {other:?}")),
                        }
                    }
                    "Fn::If" => {
                        let items = args.as_array().ok_or("Fn::If needs a list")?;
                        let branch = if self.condition(&text(&items[0])?, ctx)? {
                            &items[1]
                        } else {
                            &items[2]
                        };
                        self.resolve(branch, ctx)
                    }
                    _ => self.resolve_map(map, ctx),
                }
            }
            Value::Object(map) => self.resolve_map(map, ctx),
            other => Ok(Some(other.clone())),
        }
    }

    fn resolve_map(&self, map: &Map<String, Value>, ctx: &Context) -> Result<Option<Value>, String> {
        let mut out = Map::new();
        for (k, v) in map {
            if let Some(v) = self.resolve(v, ctx)? {
                out.insert(k.clone(), v);
            }
        }
        Ok(Some(Value::Object(out)))
    }

    /// The definition of a state machine resource as it deploys: the
    /// `DefinitionUri` file with its `DefinitionSubstitutions`. Fails unless
    /// the placeholders of the file and the substitutions are the same set.
    pub fn state_machine_definition(&self, logical: &str, ctx: &Context) -> Result<String, String> {
        let props = self.properties(logical)?;
        let uri = props["DefinitionUri"]
            .as_str()
            .ok_or_else(|| format!("{logical}: DefinitionUri is not a path"))?;
        let path = template_path()
            .parent()
            .map(|dir| dir.join(uri))
            .ok_or("the template has no directory")?;
        let definition = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let substitutions: BTreeMap<String, String> = match self.resolve(&props["DefinitionSubstitutions"], ctx)? {
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| Ok((k, text(&v)?)))
                .collect::<Result<_, String>>()?,
            _ => BTreeMap::new(),
        };
        render_substituted(&definition, &substitutions).map_err(|e| format!("{logical} ({}): {e}", path.display()))
    }

    fn statements_of(&self, document: &Value, ctx: &Context) -> Result<Vec<Statement>, String> {
        let doc = self.resolve(document, ctx)?.ok_or("NoValue policy document")?;
        let list = match &doc["Statement"] {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        Ok(list
            .iter()
            .map(|s| Statement {
                sid: s["Sid"].as_str().map(str::to_string),
                allow: s["Effect"] == "Allow",
                services: strings(s.get("Principal").and_then(|p| p.get("Service"))),
                principals: strings(s.get("Principal").and_then(|p| p.get("AWS"))),
                actions: strings(s.get("Action")),
                resources: strings(s.get("Resource")),
                condition: s.get("Condition").cloned(),
            })
            .collect())
    }

    /// Every statement of an `AWS::IAM::Role`'s inline policies.
    pub fn role_statements(&self, role: &str, ctx: &Context) -> Result<Vec<Statement>, String> {
        let mut out = Vec::new();
        for policy in self.properties(role)?["Policies"].as_array().into_iter().flatten() {
            out.extend(self.statements_of(&policy["PolicyDocument"], ctx)?);
        }
        Ok(out)
    }

    /// The statements of an `AWS::S3::BucketPolicy`.
    pub fn bucket_policy_statements(&self, logical: &str, ctx: &Context) -> Result<Vec<Statement>, String> {
        self.statements_of(&self.properties(logical)?["PolicyDocument"], ctx)
    }

    /// The statements of an `AWS::KMS::Key`'s key policy.
    pub fn key_policy_statements(&self, logical: &str, ctx: &Context) -> Result<Vec<Statement>, String> {
        self.statements_of(&self.properties(logical)?["KeyPolicy"], ctx)
    }

    /// The statements of an `AWS::IAM::ManagedPolicy`.
    pub fn managed_policy_statements(&self, logical: &str, ctx: &Context) -> Result<Vec<Statement>, String> {
        self.statements_of(&self.properties(logical)?["PolicyDocument"], ctx)
    }

    /// A resource property resolved in `ctx` (`None` for `AWS::NoValue`).
    pub fn resolved_property(&self, logical: &str, property: &str, ctx: &Context) -> Result<Option<Value>, String> {
        let value = self.properties(logical)?.get(property).cloned().unwrap_or(Value::Null);
        self.resolve(&value, ctx)
    }

    /// A parameter's declaration (`Type`, `Default`, `AllowedPattern`, ...).
    pub fn parameter(&self, name: &str) -> Result<&Value, String> {
        self.root["Parameters"]
            .get(name)
            .ok_or_else(|| format!("the template has no parameter {name}"))
    }
}

/// IAM's wildcard match (`*` any run, `?` one character).
pub fn glob(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Statement {
    /// Whether the statement covers `action` on `resource` with the request's
    /// condition keys (`StringEquals`, `StringLike`, `ArnLike`, `Bool`).
    pub fn covers(&self, action: &str, resource: &str, keys: &HashMap<String, String>) -> bool {
        let action = action.to_ascii_lowercase();
        self.actions.iter().any(|a| glob(&a.to_ascii_lowercase(), &action))
            && self.resources.iter().any(|r| glob(r, resource))
            && self.condition_holds(keys)
    }

    fn condition_holds(&self, keys: &HashMap<String, String>) -> bool {
        let Some(Value::Object(ops)) = &self.condition else {
            return true;
        };
        ops.iter().all(|(op, tests)| {
            tests.as_object().into_iter().flatten().all(|(key, want)| {
                let Some(have) = keys.get(key) else {
                    return false;
                };
                let wants = strings(Some(want));
                match op.as_str() {
                    "StringEquals" | "Bool" => wants.iter().any(|w| w == have),
                    "StringLike" | "ArnLike" => wants.iter().any(|w| glob(w, have)),
                    _ => false,
                }
            })
        })
    }
}
