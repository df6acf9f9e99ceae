from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_VIEW: _ClassVar[EventType]
    EVENT_TYPE_CLICK: _ClassVar[EventType]
    EVENT_TYPE_LIKE: _ClassVar[EventType]
    EVENT_TYPE_DISLIKE: _ClassVar[EventType]
    EVENT_TYPE_PURCHASE: _ClassVar[EventType]
    EVENT_TYPE_RATING: _ClassVar[EventType]
    EVENT_TYPE_SKIP: _ClassVar[EventType]

class AckStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACK_STATUS_UNSPECIFIED: _ClassVar[AckStatus]
    ACK_STATUS_APPLIED: _ClassVar[AckStatus]
    ACK_STATUS_DUPLICATE: _ClassVar[AckStatus]
    ACK_STATUS_REJECTED: _ClassVar[AckStatus]

class RejectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECT_REASON_UNSPECIFIED: _ClassVar[RejectReason]
    REJECT_REASON_INVALID_FIELD: _ClassVar[RejectReason]
    REJECT_REASON_UNKNOWN_ITEM: _ClassVar[RejectReason]
    REJECT_REASON_CONFLICTING_REPLAY: _ClassVar[RejectReason]

class EncodeMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODE_MODE_UNSPECIFIED: _ClassVar[EncodeMode]
    ENCODE_MODE_REPLACE: _ClassVar[EncodeMode]
    ENCODE_MODE_MERGE: _ClassVar[EncodeMode]

class Polarity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLARITY_UNSPECIFIED: _ClassVar[Polarity]
    POLARITY_POSITIVE: _ClassVar[Polarity]
    POLARITY_NEGATIVE: _ClassVar[Polarity]

class ReasonKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_KIND_UNSPECIFIED: _ClassVar[ReasonKind]
    REASON_KIND_BEHAVIOUR: _ClassVar[ReasonKind]
    REASON_KIND_CONCEPT: _ClassVar[ReasonKind]
    REASON_KIND_RECENT_ITEM: _ClassVar[ReasonKind]
    REASON_KIND_POPULAR: _ClassVar[ReasonKind]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_VIEW: EventType
EVENT_TYPE_CLICK: EventType
EVENT_TYPE_LIKE: EventType
EVENT_TYPE_DISLIKE: EventType
EVENT_TYPE_PURCHASE: EventType
EVENT_TYPE_RATING: EventType
EVENT_TYPE_SKIP: EventType
ACK_STATUS_UNSPECIFIED: AckStatus
ACK_STATUS_APPLIED: AckStatus
ACK_STATUS_DUPLICATE: AckStatus
ACK_STATUS_REJECTED: AckStatus
REJECT_REASON_UNSPECIFIED: RejectReason
REJECT_REASON_INVALID_FIELD: RejectReason
REJECT_REASON_UNKNOWN_ITEM: RejectReason
REJECT_REASON_CONFLICTING_REPLAY: RejectReason
ENCODE_MODE_UNSPECIFIED: EncodeMode
ENCODE_MODE_REPLACE: EncodeMode
ENCODE_MODE_MERGE: EncodeMode
POLARITY_UNSPECIFIED: Polarity
POLARITY_POSITIVE: Polarity
POLARITY_NEGATIVE: Polarity
REASON_KIND_UNSPECIFIED: ReasonKind
REASON_KIND_BEHAVIOUR: ReasonKind
REASON_KIND_CONCEPT: ReasonKind
REASON_KIND_RECENT_ITEM: ReasonKind
REASON_KIND_POPULAR: ReasonKind

class Event(_message.Message):
    __slots__ = ("event_id", "user_id", "item_id", "type", "value", "timestamp_ms")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_id: str
    item_id: str
    type: EventType
    value: float
    timestamp_ms: int
    def __init__(self, event_id: _Optional[str] = ..., user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., value: _Optional[float] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("batch_id", "events")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, batch_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class EventAck(_message.Message):
    __slots__ = ("event_id", "status", "reason", "message", "user_version")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    USER_VERSION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    status: AckStatus
    reason: RejectReason
    message: str
    user_version: int
    def __init__(self, event_id: _Optional[str] = ..., status: _Optional[_Union[AckStatus, str]] = ..., reason: _Optional[_Union[RejectReason, str]] = ..., message: _Optional[str] = ..., user_version: _Optional[int] = ...) -> None: ...

class EventBatchAck(_message.Message):
    __slots__ = ("batch_id", "acks", "applied", "duplicates", "rejected")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    acks: _containers.RepeatedCompositeFieldContainer[EventAck]
    applied: int
    duplicates: int
    rejected: int
    def __init__(self, batch_id: _Optional[str] = ..., acks: _Optional[_Iterable[_Union[EventAck, _Mapping]]] = ..., applied: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class EncodeInterestRequest(_message.Message):
    __slots__ = ("user_id", "text", "mode")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    text: str
    mode: EncodeMode
    def __init__(self, user_id: _Optional[str] = ..., text: _Optional[str] = ..., mode: _Optional[_Union[EncodeMode, str]] = ...) -> None: ...

class AttributeLink(_message.Message):
    __slots__ = ("name", "value", "similarity")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    similarity: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ..., similarity: _Optional[float] = ...) -> None: ...

class Concept(_message.Message):
    __slots__ = ("phrase", "polarity", "weight", "links")
    PHRASE_FIELD_NUMBER: _ClassVar[int]
    POLARITY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    phrase: str
    polarity: Polarity
    weight: float
    links: _containers.RepeatedCompositeFieldContainer[AttributeLink]
    def __init__(self, phrase: _Optional[str] = ..., polarity: _Optional[_Union[Polarity, str]] = ..., weight: _Optional[float] = ..., links: _Optional[_Iterable[_Union[AttributeLink, _Mapping]]] = ...) -> None: ...

class EncodeInterestResponse(_message.Message):
    __slots__ = ("user_id", "concepts", "stored", "model")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONCEPTS_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    concepts: _containers.RepeatedCompositeFieldContainer[Concept]
    stored: _containers.RepeatedCompositeFieldContainer[Concept]
    model: str
    def __init__(self, user_id: _Optional[str] = ..., concepts: _Optional[_Iterable[_Union[Concept, _Mapping]]] = ..., stored: _Optional[_Iterable[_Union[Concept, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class Attribute(_message.Message):
    __slots__ = ("name", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class AttributeFilter(_message.Message):
    __slots__ = ("name", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class RecommendOptions(_message.Message):
    __slots__ = ("theta", "concept_weight", "exclude_consumed", "exclude_item_ids", "include", "exclude", "popularity_weight")
    THETA_FIELD_NUMBER: _ClassVar[int]
    CONCEPT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_CONSUMED_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    POPULARITY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    theta: float
    concept_weight: float
    exclude_consumed: bool
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    include: _containers.RepeatedCompositeFieldContainer[AttributeFilter]
    exclude: _containers.RepeatedCompositeFieldContainer[AttributeFilter]
    popularity_weight: float
    def __init__(self, theta: _Optional[float] = ..., concept_weight: _Optional[float] = ..., exclude_consumed: _Optional[bool] = ..., exclude_item_ids: _Optional[_Iterable[str]] = ..., include: _Optional[_Iterable[_Union[AttributeFilter, _Mapping]]] = ..., exclude: _Optional[_Iterable[_Union[AttributeFilter, _Mapping]]] = ..., popularity_weight: _Optional[float] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "k", "options")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    k: int
    options: RecommendOptions
    def __init__(self, user_id: _Optional[str] = ..., k: _Optional[int] = ..., options: _Optional[_Union[RecommendOptions, _Mapping]] = ...) -> None: ...

class Reason(_message.Message):
    __slots__ = ("kind", "text", "source", "contribution")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    kind: ReasonKind
    text: str
    source: str
    contribution: float
    def __init__(self, kind: _Optional[_Union[ReasonKind, str]] = ..., text: _Optional[str] = ..., source: _Optional[str] = ..., contribution: _Optional[float] = ...) -> None: ...

class ScoredItem(_message.Message):
    __slots__ = ("item_id", "score", "reasons", "text", "attributes")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    text: str
    attributes: _containers.RepeatedCompositeFieldContainer[Attribute]
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., text: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[Attribute, _Mapping]]] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("user_id", "items", "removed_by_dislikes", "removed_consumed", "removed_by_filters", "user_version", "strategy", "model")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_BY_DISLIKES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_CONSUMED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_BY_FILTERS_FIELD_NUMBER: _ClassVar[int]
    USER_VERSION_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    removed_by_dislikes: int
    removed_consumed: int
    removed_by_filters: int
    user_version: int
    strategy: str
    model: str
    def __init__(self, user_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., removed_by_dislikes: _Optional[int] = ..., removed_consumed: _Optional[int] = ..., removed_by_filters: _Optional[int] = ..., user_version: _Optional[int] = ..., strategy: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("item_id", "text", "attributes")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    text: str
    attributes: _containers.RepeatedCompositeFieldContainer[Attribute]
    def __init__(self, item_id: _Optional[str] = ..., text: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[Attribute, _Mapping]]] = ...) -> None: ...

class UpsertItemsRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class UpsertItemsResponse(_message.Message):
    __slots__ = ("upserted", "model", "catalog_size")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CATALOG_SIZE_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    model: str
    catalog_size: int
    def __init__(self, upserted: _Optional[int] = ..., model: _Optional[str] = ..., catalog_size: _Optional[int] = ...) -> None: ...

class DeleteItemsRequest(_message.Message):
    __slots__ = ("item_ids",)
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteItemsResponse(_message.Message):
    __slots__ = ("deleted", "catalog_size")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    CATALOG_SIZE_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    catalog_size: int
    def __init__(self, deleted: _Optional[int] = ..., catalog_size: _Optional[int] = ...) -> None: ...

class GetUserStateRequest(_message.Message):
    __slots__ = ("user_id", "include_vector")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VECTOR_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    include_vector: bool
    def __init__(self, user_id: _Optional[str] = ..., include_vector: _Optional[bool] = ...) -> None: ...

class RecentEvent(_message.Message):
    __slots__ = ("event_id", "item_id", "type", "value", "timestamp_ms")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    item_id: str
    type: EventType
    value: float
    timestamp_ms: int
    def __init__(self, event_id: _Optional[str] = ..., item_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., value: _Optional[float] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class GetUserStateResponse(_message.Message):
    __slots__ = ("user_id", "version", "recent_events", "consumed_count", "concepts", "interest_vector", "model", "event_count")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RECENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONCEPTS_FIELD_NUMBER: _ClassVar[int]
    INTEREST_VECTOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    version: int
    recent_events: _containers.RepeatedCompositeFieldContainer[RecentEvent]
    consumed_count: int
    concepts: _containers.RepeatedCompositeFieldContainer[Concept]
    interest_vector: _containers.RepeatedScalarFieldContainer[float]
    model: str
    event_count: int
    def __init__(self, user_id: _Optional[str] = ..., version: _Optional[int] = ..., recent_events: _Optional[_Iterable[_Union[RecentEvent, _Mapping]]] = ..., consumed_count: _Optional[int] = ..., concepts: _Optional[_Iterable[_Union[Concept, _Mapping]]] = ..., interest_vector: _Optional[_Iterable[float]] = ..., model: _Optional[str] = ..., event_count: _Optional[int] = ...) -> None: ...

class DeleteUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class DeleteUserResponse(_message.Message):
    __slots__ = ("keys_deleted",)
    KEYS_DELETED_FIELD_NUMBER: _ClassVar[int]
    keys_deleted: int
    def __init__(self, keys_deleted: _Optional[int] = ...) -> None: ...

class WatchRecommendationsRequest(_message.Message):
    __slots__ = ("user_id", "k", "options", "min_interval_ms")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MIN_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    k: int
    options: RecommendOptions
    min_interval_ms: int
    def __init__(self, user_id: _Optional[str] = ..., k: _Optional[int] = ..., options: _Optional[_Union[RecommendOptions, _Mapping]] = ..., min_interval_ms: _Optional[int] = ...) -> None: ...

class AttributeSynonyms(_message.Message):
    __slots__ = ("attribute", "value", "synonyms")
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SYNONYMS_FIELD_NUMBER: _ClassVar[int]
    attribute: str
    value: str
    synonyms: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, attribute: _Optional[str] = ..., value: _Optional[str] = ..., synonyms: _Optional[_Iterable[str]] = ...) -> None: ...

class SetAttributeSynonymsRequest(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AttributeSynonyms]
    def __init__(self, entries: _Optional[_Iterable[_Union[AttributeSynonyms, _Mapping]]] = ...) -> None: ...

class SetAttributeSynonymsResponse(_message.Message):
    __slots__ = ("stored", "deleted", "total_synonyms")
    STORED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SYNONYMS_FIELD_NUMBER: _ClassVar[int]
    stored: int
    deleted: int
    total_synonyms: int
    def __init__(self, stored: _Optional[int] = ..., deleted: _Optional[int] = ..., total_synonyms: _Optional[int] = ...) -> None: ...
