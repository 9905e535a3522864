"""The request and response schemas of the v2 API (marshmallow), following Sahara's.

Requests are strict: an unknown field is a 400, not silently dropped. Responses are described
for the OpenAPI document; representations may carry more fields than described.
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from sahara_es.commands.templates import NODE_GROUP_NAME, NODE_GROUP_NAME_MAX

HOSTNAME = (r"^(([a-zA-Z]|[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9])\.)*"
            r"([A-Za-z]|[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9])$")
SIMPLE_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9\-_\.]*$"


def hostname_name(required: bool = True) -> fields.String:
    return fields.String(required=required, validate=[
        validate.Length(1, 50),
        validate.Regexp(HOSTNAME, error="must be 1-50 characters in hostname form (letters,"
                                         " digits and hyphens, starting with a letter)")])


def simple_name(required: bool = True) -> fields.String:
    return fields.String(required=required, validate=[
        validate.Length(1, 50),
        validate.Regexp(SIMPLE_NAME, error="must be 1-50 letters, digits, '-', '_' or '.',"
                                           " starting with a letter or digit")])


class ShownRegexp(validate.Regexp):
    """A pattern whose refusal quotes the value, shortened."""

    def _format_error(self, value: Any) -> str:
        shown = value if len(value) <= 60 else f"{value[:57]}..."
        return self.error.format(input=shown, regex=self.regex.pattern)


def node_group_name(required: bool = True) -> fields.String:
    return fields.String(required=required, validate=[
        validate.Length(1, NODE_GROUP_NAME_MAX,
                        error=f"node group names are 1-{NODE_GROUP_NAME_MAX} characters"),
        ShownRegexp(NODE_GROUP_NAME.pattern,
                    error="node group {input!r}: names are letters, digits and hyphens,"
                          " starting with a letter and not ending with a hyphen")])


def bounded(max_length: int = 255, **kwargs: Any) -> fields.String:
    """A string of at most ``max_length`` characters."""
    return fields.String(validate=validate.Length(max=max_length), **kwargs)


MAX_PATH_COMPONENT = 255
"""Bytes in one ``/``-separated part of a URL or path (a file name's limit)."""


def path_components(value: str) -> None:
    for part in value.split("/"):
        if len(part.encode("utf-8", "surrogatepass")) > MAX_PATH_COMPONENT:
            raise ValidationError(f"each part between '/' is at most {MAX_PATH_COMPONENT}"
                                  f" bytes; one is {len(part.encode('utf-8', 'surrogatepass'))}")


UUID = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"


def uuid_id(**kwargs: Any) -> fields.String:
    """An id, kept as the string it was given (ids are UUIDs)."""
    return fields.String(validate=validate.Regexp(UUID, error="must be a UUID"), **kwargs)


def text(**kwargs: Any) -> fields.String:
    return fields.String(allow_none=True, validate=validate.Length(max=1024), **kwargs)


def flag() -> fields.Boolean:
    return fields.Boolean()


class Strict(Schema):
    class Meta:
        unknown = RAISE


class Share(Strict):
    id = uuid_id(required=True)
    path = bounded(1024, allow_none=True)
    access_level = fields.String(validate=validate.OneOf(["rw", "ro"]))


NodeConfigs = fields.Dict(keys=fields.String(), values=fields.Dict(keys=fields.String()))


class NodeGroupTemplateFields(Strict):
    """What a node group template and an inline node group have in common."""

    flavor_id = fields.String(validate=validate.Length(1, 255))
    node_processes = fields.List(fields.String(validate=validate.Length(1, 64)),
                                 validate=validate.Length(min=1))
    image_id = bounded(allow_none=True)
    node_configs = NodeConfigs
    volumes_per_node = fields.Integer(validate=validate.Range(min=0, max=64))
    volumes_size = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    volume_type = bounded(allow_none=True)
    volumes_availability_zone = bounded(allow_none=True)
    volume_mount_prefix = fields.String(validate=[
        validate.Length(max=1024), validate.Regexp(r"^/[^\0]*$"), path_components])
    volume_local_to_instance = flag()
    floating_ip_pool = bounded(allow_none=True)
    security_groups = fields.List(bounded(), allow_none=True)
    auto_security_group = flag()
    availability_zone = bounded(allow_none=True)
    is_proxy_gateway = flag()
    use_autoconfig = flag()
    shares = fields.List(fields.Nested(Share))
    boot_from_volume = flag()
    boot_volume_type = bounded()
    boot_volume_availability_zone = bounded()
    boot_volume_local_to_instance = flag()


class NodeGroupTemplateCreate(NodeGroupTemplateFields):
    name = hostname_name()
    description = text()
    plugin_name = bounded(64, required=True)
    plugin_version = bounded(64, required=True)
    flavor_id = fields.String(required=True, validate=validate.Length(1, 255))
    node_processes = fields.List(fields.String(validate=validate.Length(1, 64)), required=True,
                                 validate=validate.Length(min=1))
    is_public = flag()
    is_protected = flag()


class NodeGroupTemplateUpdate(NodeGroupTemplateFields):
    name = hostname_name(required=False)
    description = text()
    plugin_name = bounded(64)
    plugin_version = bounded(64)
    is_public = flag()
    is_protected = flag()


class NodeGroup(NodeGroupTemplateFields):
    """A node group of a cluster or cluster template: from a template, or given inline."""

    name = node_group_name()
    count = fields.Integer(required=True, validate=validate.Range(min=0, max=1000))
    node_group_template_id = uuid_id(allow_none=True)

    @validates_schema
    def _template_or_inline(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("node_group_template_id") and not (
                data.get("flavor_id") and data.get("node_processes")):
            raise ValidationError("give node_group_template_id, or flavor_id and"
                                  " node_processes", "node_group_template_id")


class ClusterTemplateFields(Strict):
    description = text()
    cluster_configs = fields.Dict(keys=fields.String(), values=fields.Dict())
    node_groups = fields.List(fields.Nested(NodeGroup))
    anti_affinity = fields.List(bounded(64))
    neutron_management_network = bounded(allow_none=True)
    default_image_id = bounded(allow_none=True)
    use_autoconfig = flag()
    shares = fields.List(fields.Nested(Share))
    is_public = flag()
    is_protected = flag()
    domain_name = fields.String(allow_none=True, validate=validate.Length(max=255))


class ClusterTemplateCreate(ClusterTemplateFields):
    name = hostname_name()
    plugin_name = bounded(64, required=True)
    plugin_version = bounded(64, required=True)


class ClusterTemplateUpdate(ClusterTemplateFields):
    name = hostname_name(required=False)
    plugin_name = bounded(64)
    plugin_version = bounded(64)


class ClusterCreate(ClusterTemplateFields):
    name = hostname_name()
    plugin_name = bounded(64, required=True)
    plugin_version = bounded(64, required=True)
    cluster_template_id = uuid_id(allow_none=True)
    is_transient = flag()
    user_keypair_id = fields.String(allow_none=True, validate=[
        validate.Length(max=255), validate.Regexp(r"^[a-zA-Z0-9\-_ ]+$")])
    count = fields.Integer(validate=validate.Range(min=1, max=50))


class Verification(Strict):
    status = fields.String(required=True, validate=validate.OneOf(["START"]))


class ClusterUpdate(Strict):
    name = hostname_name(required=False)
    description = text()
    is_public = flag()
    is_protected = flag()
    shares = fields.List(fields.Nested(Share))
    verification = fields.Nested(Verification)
    update_keypair = flag()
    rebuild_failed_nodes = fields.Boolean(metadata={
        "description": "sahara-es: replace the failed nodes of a partially active cluster"})


class Resize(Strict):
    name = hostname_name()
    count = fields.Integer(required=True, validate=validate.Range(min=0, max=1000))
    instances = fields.List(bounded())


class ClusterScale(Strict):
    resize_node_groups = fields.List(fields.Nested(Resize), validate=validate.Length(min=1))
    add_node_groups = fields.List(fields.Nested(NodeGroup), validate=validate.Length(min=1))

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("resize_node_groups") and not data.get("add_node_groups"):
            raise ValidationError("give resize_node_groups or add_node_groups")


class ClusterDelete(Strict):
    force = flag()


DATA_SOURCE_TYPES = ["swift", "hdfs", "maprfs", "manila", "s3", "file"]


class StringOrBoolean(fields.Field[str | bool]):
    """A credential's value: text, or a boolean (s3's ``ssl``, ``bucket_in_path``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and len(value) <= 1024:
            return value
        raise ValidationError("must be a string (at most 1024 characters) or a boolean")


def credential_map() -> fields.Dict:
    return fields.Dict(keys=fields.String(validate=validate.Length(1, 64)),
                       values=StringOrBoolean())


class DataSourceCreate(Strict):
    name = simple_name()
    description = text()
    type = fields.String(required=True, validate=validate.OneOf(DATA_SOURCE_TYPES))
    url = fields.String(required=True, validate=[validate.Length(1, 1024), path_components])
    credentials = credential_map()
    is_public = flag()
    is_protected = flag()


class DataSourceUpdate(Strict):
    name = simple_name(required=False)
    description = text()
    type = fields.String(validate=validate.OneOf(DATA_SOURCE_TYPES))
    url = fields.String(validate=[validate.Length(1, 1024), path_components])
    credentials = credential_map()
    is_public = flag()
    is_protected = flag()


JOB_BINARY_SCHEMES = ("swift://", "s3://", "manila://", "internal-db://", "file://")


def binary_url(required: bool) -> fields.String:
    return fields.String(required=required, validate=[
        validate.Length(1, 1024),
        validate.Regexp(r"^(swift|s3|manila|internal-db|file)://\S+$",
                        error="must be a swift://, s3://, manila://, internal-db:// or"
                              " file:// URL"),
        path_components])


class JobBinaryCreate(Strict):
    name = simple_name()
    url = binary_url(required=True)
    description = text()
    extra = fields.Dict(keys=fields.String(), values=fields.String())
    is_public = flag()
    is_protected = flag()


class JobBinaryUpdate(Strict):
    name = simple_name(required=False)
    url = binary_url(required=False)
    description = text()
    extra = fields.Dict(keys=fields.String(), values=fields.String())
    is_public = flag()
    is_protected = flag()


JOB_TYPES = ["Hive", "Java", "MapReduce", "MapReduce.Streaming", "Pig", "Shell", "Spark",
             "Storm", "Storm.Pyleus", "Dask"]


class InterfaceArgument(Strict):
    name = bounded(required=True)
    description = text()
    mapping_type = fields.String(required=True,
                                 validate=validate.OneOf(["args", "configs", "params"]))
    location = bounded(required=True)
    value_type = fields.String(validate=validate.OneOf(["string", "number", "data_source"]))
    required = flag()
    default = bounded(1024, allow_none=True)


class JobTemplateCreate(Strict):
    name = simple_name()
    type = fields.String(required=True, validate=validate.OneOf(JOB_TYPES))
    description = text()
    mains = fields.List(uuid_id())
    libs = fields.List(uuid_id())
    streaming = flag()
    interface = fields.List(fields.Nested(InterfaceArgument))
    is_public = flag()
    is_protected = flag()


class JobTemplateUpdate(Strict):
    name = simple_name(required=False)
    description = text()
    is_public = flag()
    is_protected = flag()


class JobConfigs(Strict):
    configs = fields.Dict(keys=fields.String())
    params = fields.Dict(keys=fields.String())
    args = fields.List(fields.String())
    job_execution_info = fields.Dict(keys=fields.String())


class JobCreate(Strict):
    cluster_id = uuid_id(required=True)
    job_template_id = uuid_id(required=True)
    input_id = uuid_id(allow_none=True)
    output_id = uuid_id(allow_none=True)
    job_configs = fields.Nested(JobConfigs)
    interface = fields.Dict(keys=fields.String(), values=fields.String())
    is_public = flag()
    is_protected = flag()


class JobInfo(Strict):
    status = fields.String(required=True,
                           validate=validate.OneOf(["cancel", "suspend", "CANCEL", "SUSPEND"]))


class JobUpdate(Strict):
    is_public = flag()
    is_protected = flag()
    info = fields.Nested(JobInfo)


class Label(Strict):
    status = fields.Boolean(required=True)


class PluginUpdate(Strict):
    plugin_labels = fields.Dict(keys=fields.String(), values=fields.Nested(Label))
    version_labels = fields.Dict(keys=fields.String(), values=fields.Dict(
        keys=fields.String(), values=fields.Nested(Label)))


# -- responses (for the OpenAPI document) ---------------------------------------------------

class Representation(Schema):
    """What every resource carries. The response schemas mark every key Sahara's bodies
    have as required: each answer carries them all (``api.views.bodies``)."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True)
    project_id = fields.String(required=True)
    created_at = fields.String(required=True, allow_none=True)
    updated_at = fields.String(required=True, allow_none=True)


def nullable(field: type[fields.Field[Any]], **kwargs: Any) -> Any:
    """A field every body carries, which may be null."""
    return field(required=True, allow_none=True, **kwargs)


def present(field: type[fields.Field[Any]], **kwargs: Any) -> Any:
    """A field every body carries, never null."""
    return field(required=True, **kwargs)


class Shared(Schema):
    description = nullable(fields.String)
    is_public = present(fields.Boolean)
    is_protected = present(fields.Boolean)


class Named(Representation, Shared):
    name = fields.String(required=True)


class NodeGroupShape(Schema):
    """A node group's settings, in a node group template or a cluster (template)."""

    flavor_id = present(fields.String)
    node_processes = present(fields.List, cls_or_instance=fields.String())
    image_id = nullable(fields.String)
    node_configs = present(fields.Dict)
    volumes_per_node = present(fields.Integer)
    volumes_size = nullable(fields.Integer)
    volume_type = nullable(fields.String)
    volume_mount_prefix = present(fields.String)
    volume_local_to_instance = present(fields.Boolean)
    volumes_availability_zone = nullable(fields.String)
    boot_from_volume = present(fields.Boolean)
    boot_volume_type = nullable(fields.String)
    boot_volume_availability_zone = nullable(fields.String)
    boot_volume_local_to_instance = present(fields.Boolean)
    floating_ip_pool = nullable(fields.String)
    security_groups = nullable(fields.List, cls_or_instance=fields.String())
    auto_security_group = present(fields.Boolean)
    availability_zone = nullable(fields.String)
    is_proxy_gateway = present(fields.Boolean)
    use_autoconfig = present(fields.Boolean)
    shares = nullable(fields.List, cls_or_instance=fields.Dict())
    description = nullable(fields.String)
    is_public = present(fields.Boolean)
    is_protected = present(fields.Boolean)
    is_default = present(fields.Boolean)


class NodeGroupTemplate(Named, NodeGroupShape):
    plugin_name = present(fields.String)
    plugin_version = present(fields.String)


class TemplateNodeGroup(NodeGroupShape):
    """A node group of a cluster template."""

    class Meta:
        unknown = INCLUDE

    id = present(fields.String)
    name = present(fields.String)
    count = present(fields.Integer)
    node_group_template_id = nullable(fields.String)
    created_at = nullable(fields.String)
    updated_at = nullable(fields.String)


class Instance(Schema):
    class Meta:
        unknown = INCLUDE

    id = present(fields.String)
    instance_id = present(fields.String)
    instance_name = present(fields.String)
    internal_ip = nullable(fields.String)
    management_ip = nullable(fields.String)
    dns_hostname = nullable(fields.String)
    storage_devices_number = present(fields.Integer)
    volumes = present(fields.List, cls_or_instance=fields.String())
    created_at = nullable(fields.String)
    updated_at = nullable(fields.String)
    host = fields.String(allow_none=True, metadata={
        "description": "sahara-es: the host the node runs on"})


class ClusterNodeGroup(TemplateNodeGroup):
    """A node group of a cluster, with its instances."""

    instances = present(fields.List, cls_or_instance=fields.Nested(Instance))


class ClusterShape(Shared):
    """What a cluster template and a cluster have in common."""

    plugin_name = present(fields.String)
    plugin_version = present(fields.String)
    anti_affinity = present(fields.List, cls_or_instance=fields.String())
    cluster_configs = present(fields.Dict)
    default_image_id = nullable(fields.String)
    neutron_management_network = nullable(fields.String)
    domain_name = nullable(fields.String)
    shares = nullable(fields.List, cls_or_instance=fields.Dict())
    use_autoconfig = present(fields.Boolean)


class ClusterTemplate(Named, ClusterShape):
    is_default = present(fields.Boolean)
    node_groups = present(fields.List, cls_or_instance=fields.Nested(TemplateNodeGroup))


class StepEvent(Schema):
    """A node's outcome in a provisioning step."""

    class Meta:
        unknown = INCLUDE

    id = present(fields.String)
    step_id = present(fields.String)
    instance_id = present(fields.String)
    instance_name = present(fields.String)
    node_group_id = nullable(fields.String)
    event_info = nullable(fields.String)
    successful = present(fields.Boolean)
    created_at = present(fields.String)
    updated_at = nullable(fields.String)


class ProvisionStep(Schema):
    class Meta:
        unknown = INCLUDE

    id = present(fields.String)
    cluster_id = present(fields.String)
    project_id = present(fields.String)
    step_name = present(fields.String)
    step_type = present(fields.String)
    total = present(fields.Integer)
    successful = nullable(fields.Boolean)
    created_at = present(fields.String)
    updated_at = nullable(fields.String)
    events = fields.List(fields.Nested(StepEvent), metadata={
        "description": "only with show_progress=true"})


class HealthCheckShown(Schema):
    class Meta:
        unknown = INCLUDE

    id = present(fields.String)
    verification_id = present(fields.String)
    name = present(fields.String)
    status = present(fields.String)
    description = nullable(fields.String)
    created_at = nullable(fields.String)
    updated_at = nullable(fields.String)


class VerificationShown(Schema):
    """The cluster's last verification; ``{}`` before its first."""

    class Meta:
        unknown = INCLUDE

    id = fields.String()
    cluster_id = fields.String()
    status = fields.String(allow_none=True)
    checks = fields.List(fields.Nested(HealthCheckShown))
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)


class WorkflowOwnerShown(Schema):
    """The engine that recorded the cluster's running workflow's latest step, and its
    region (doc/regions.rst); null while no workflow runs."""

    workflow_id = present(fields.String)
    engine = nullable(fields.String)
    region = nullable(fields.String)


class Cluster(Named, ClusterShape):
    cluster_template_id = nullable(fields.String)
    user_keypair_id = nullable(fields.String)
    is_transient = present(fields.Boolean)
    anti_affinity_ratio = present(fields.Integer)
    management_public_key = nullable(fields.String, metadata={
        "description": "null until the cluster's first instance is made"})
    trust_id = nullable(fields.String)
    status = present(fields.String)
    status_description = nullable(fields.String)
    info = present(fields.Dict, keys=fields.String(), values=fields.Dict())
    node_groups = present(fields.List, cls_or_instance=fields.Nested(ClusterNodeGroup))
    provision_progress = present(fields.List, cls_or_instance=fields.Nested(ProvisionStep))
    verification = present(fields.Nested, nested=VerificationShown)
    region = nullable(fields.String, metadata={
        "description": "the cluster's home region: that of the API process that accepted"
                       " it; null on a store of one site"})
    workflow_owner = nullable(fields.Nested, nested=WorkflowOwnerShown)


class DataSource(Named):
    type = present(fields.String)
    url = present(fields.String)


class JobBinary(Named):
    url = present(fields.String)


class JobTemplate(Named):
    type = present(fields.String)
    mains = present(fields.List, cls_or_instance=fields.Dict())
    libs = present(fields.List, cls_or_instance=fields.Dict())
    interface = present(fields.List, cls_or_instance=fields.Dict())


class Job(Representation):
    cluster_id = present(fields.String)
    job_template_id = present(fields.String)
    input_id = nullable(fields.String)
    output_id = nullable(fields.String)
    job_configs = present(fields.Dict)
    interface = present(fields.Dict)
    data_source_urls = present(fields.Dict, keys=fields.String(), values=fields.String())
    info = present(fields.Dict)
    is_public = present(fields.Boolean)
    is_protected = present(fields.Boolean)
    start_time = nullable(fields.String)
    end_time = nullable(fields.String)
    engine_job_id = nullable(fields.String)
    return_code = nullable(fields.Raw)
    description = nullable(fields.String, metadata={"description": "Always null, as in Sahara"})


class Plugin(Schema):
    class Meta:
        unknown = INCLUDE

    name = fields.String(required=True)
    title = fields.String()
    description = fields.String()
    versions = fields.List(fields.String())


class Exported(Schema):
    """A template exported as a reusable file: no id, project or dates; placeholders such as
    ``{flavor_id}`` where clouds differ."""

    class Meta:
        unknown = INCLUDE

    name = fields.String(required=True)
    plugin_name = fields.String()
    plugin_version = fields.String()


class JobTypePlugin(Schema):
    class Meta:
        unknown = INCLUDE

    name = fields.String(required=True)
    title = fields.String()
    description = fields.String()
    versions = fields.Dict(keys=fields.String(), values=fields.Dict(), required=True)
    """The plugin's versions that run the job type (unlike a plugin's list of versions)."""


class JobType(Schema):
    name = fields.String(required=True, validate=validate.OneOf(JOB_TYPES))
    plugins = fields.List(fields.Nested(JobTypePlugin), required=True)


class ConfigHint(Schema):
    class Meta:
        unknown = INCLUDE

    name = fields.String(required=True)
    value = fields.String()
    description = fields.String()


class ConfigHints(Schema):
    configs = fields.List(fields.Nested(ConfigHint), required=True)
    args = fields.List(fields.String(), required=True, allow_none=True)
    params = fields.Dict(keys=fields.String(), required=True, allow_none=True)


class Markers(Schema):
    prev = fields.String(allow_none=True, required=True)
    next = fields.String(allow_none=True, required=True)


class Link(Schema):
    rel = fields.String(required=True, validate=validate.OneOf(["next", "prev", "first"]))
    href = fields.String(required=True)


class ErrorItem(Schema):
    request_id = fields.String(required=True, allow_none=True)
    code = fields.String(required=True)
    status = fields.Integer(required=True)
    title = fields.String(required=True)
    detail = fields.String(required=True)


class Error(Schema):
    error_code = fields.Integer(required=True)
    error_name = fields.String(required=True)
    error_message = fields.String(required=True)
    errors = fields.List(fields.Nested(ErrorItem), required=True)


class ImageRegister(Strict):
    """Sahara's ``image_register_schema``: the user nodes booted from the image log in as."""

    username = fields.String(required=True, validate=validate.Length(1, 255))
    description = text()


class ImageTags(Strict):
    """Sahara's ``image_tags_schema``: the image's tags, all of them."""

    tags = fields.List(fields.String(validate=validate.Length(1, 255)), required=True,
                       validate=validate.Length(max=100))


class Image(Schema):
    """A registered image, as Sahara showed Glance's image with its properties."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True)
    name = fields.String(required=True)
    status = fields.String(required=True)
    username = fields.String(required=True)
    description = fields.String(required=True, allow_none=True)
    tags = fields.List(fields.String(), required=True)
    metadata = fields.Dict(keys=fields.String(), required=True)
    minDisk = fields.Integer(required=True)
    minRam = fields.Integer(required=True)
    progress = fields.Integer(required=True)
    created = fields.String(required=True)
    updated = fields.String(required=True)


class ImageTagList(Schema):
    tags = fields.List(fields.String(), required=True)
