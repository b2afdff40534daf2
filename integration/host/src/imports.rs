//! The `env` and WASI functions Envoy registers, at Envoy's exact signatures and status codes
//! (cpp-host `src/exports.cc` + Envoy `context.cc`).

use wasmtime::{Caller, Linker};

use crate::abi::{buffer, map, stream_type, LogLevel, Status};
use crate::headers::Headers;
use crate::metrics::{MetricKind, CUSTOM_NAMESPACE};
use crate::property::Value;
use crate::stream_state::{HeadersAt, StreamState};
use crate::vm::{ContextKind, DeferredAction, LocalReplyRequest, Phase, Tick, VmData};
use crate::world::{filter_state_key, Event, HttpCall, SharedQueue, World};

/// Why a hostcall did not return OK: a status for the module, or a trap that fails the VM.
enum Fail {
    Status(Status),
    Trap(wasmtime::Error),
}

impl From<Status> for Fail {
    fn from(status: Status) -> Self {
        Fail::Status(status)
    }
}

type Hr = Result<(), Fail>;
type Cx<'a, 'b> = &'a mut Caller<'b, VmData>;

fn finish(result: Hr) -> wasmtime::Result<i32> {
    match result {
        Ok(()) => Ok(0),
        Err(Fail::Status(status)) => Ok(status as i32),
        Err(Fail::Trap(error)) => Err(error),
    }
}

/// Hostcalls allowed while the VM starts (`_initialize`, `main`), besides the WASI functions.
const STARTUP_ALLOWED: &[&str] = &["proxy_log", "emscripten_notify_memory_growth"];
/// Hostcalls allowed inside the module's allocator.
const ALLOCATOR_ALLOWED: &[&str] = &["proxy_log", "fd_write", "clock_time_get", "poll_oneoff"];

/// Traps like V8 does when a restricted callback is used during start-up or in `malloc`.
fn restrict(c: &Caller<'_, VmData>, name: &str, wasi: bool) -> wasmtime::Result<()> {
    match c.data().phase {
        Phase::Running => Ok(()),
        Phase::Starting if wasi || STARTUP_ALLOWED.contains(&name) => Ok(()),
        Phase::Allocating if ALLOCATOR_ALLOWED.contains(&name) => Ok(()),
        Phase::Starting => Err(wasmtime::format_err!(
            "restricted_callback: {name} called during VM start-up (V8 traps; move it to on_vm_start/on_configure)"
        )),
        Phase::Allocating => Err(wasmtime::format_err!(
            "restricted_callback: {name} called from inside the module's allocator"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Guest memory helpers.

fn read(c: Cx, ptr: i32, len: i32) -> Result<Vec<u8>, Fail> {
    let memory = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    memory
        .data(&*c)
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or(Fail::Status(Status::InvalidMemoryAccess))
}

fn write(c: Cx, ptr: u32, bytes: &[u8]) -> Hr {
    let memory = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let start = ptr as usize;
    let slot = memory
        .data_mut(&mut *c)
        .get_mut(start..start + bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    slot.copy_from_slice(bytes);
    Ok(())
}

fn write_u32(c: Cx, ptr: i32, value: u32) -> Hr {
    write(c, ptr as u32, &value.to_le_bytes())
}

fn write_u64(c: Cx, ptr: i32, value: u64) -> Hr {
    write(c, ptr as u32, &value.to_le_bytes())
}

/// Calls the module's allocator for exactly `len` bytes, with callbacks restricted meanwhile.
fn allocate(c: Cx, len: usize) -> Result<u32, Fail> {
    let allocator = c
        .data()
        .allocator
        .clone()
        .ok_or(Status::InvalidMemoryAccess)?;
    let previous = std::mem::replace(&mut c.data_mut().phase, Phase::Allocating);
    let result = allocator.call(&mut *c, len as i32);
    c.data_mut().phase = previous;
    match result.map_err(Fail::Trap)? {
        0 => Err(Status::InvalidMemoryAccess.into()),
        ptr => Ok(ptr as u32),
    }
}

/// Envoy's `copyToPointerSize`: empty gives ptr 0 and size 0 without allocating.
fn copy_out(c: Cx, bytes: &[u8], ret_ptr: i32, ret_size: i32) -> Hr {
    if bytes.is_empty() {
        write_u32(c, ret_ptr, 0)?;
        return write_u32(c, ret_size, 0);
    }
    let ptr = allocate(c, bytes.len())?;
    write(c, ptr, bytes)?;
    write_u32(c, ret_ptr, ptr)?;
    write_u32(c, ret_size, bytes.len() as u32)
}

fn read_string(c: Cx, ptr: i32, len: i32) -> Result<String, Fail> {
    Ok(String::from_utf8_lossy(&read(c, ptr, len)?).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Context helpers.

fn effective(c: &Caller<'_, VmData>) -> Option<ContextKind> {
    let data = c.data();
    data.contexts.get(&data.effective_context).copied()
}

fn stream_of(c: &Caller<'_, VmData>) -> Option<(u64, usize)> {
    match effective(c)? {
        ContextKind::Stream { stream, filter, .. } => Some((stream, filter)),
        ContextKind::Root { .. } => None,
    }
}

/// Runs `f` on a header map if the current phase exposes it; `Ok(None)` when it does not.
/// The bool tells whether the map may be changed.
fn with_map<R>(
    c: Cx,
    map_type: i32,
    f: impl FnOnce(&mut Headers, bool) -> R,
) -> Result<Option<R>, Fail> {
    if !(0..=map::MAX).contains(&map_type) {
        return Err(Status::BadArgument.into());
    }
    if map_type == map::HTTP_CALL_RESPONSE_HEADERS || map_type == map::HTTP_CALL_RESPONSE_TRAILERS {
        let Some(response) = c.data_mut().callout_response.as_mut() else {
            return Ok(None);
        };
        let headers = if map_type == map::HTTP_CALL_RESPONSE_HEADERS {
            &mut response.headers
        } else {
            &mut response.trailers
        };
        return Ok(Some(f(headers, false)));
    }
    let request = match map_type {
        map::HTTP_REQUEST_HEADERS | map::HTTP_REQUEST_TRAILERS => true,
        map::HTTP_RESPONSE_HEADERS | map::HTTP_RESPONSE_TRAILERS => false,
        _ => return Ok(None), // gRPC metadata: no gRPC streams in this host
    };
    let trailers =
        map_type == map::HTTP_REQUEST_TRAILERS || map_type == map::HTTP_RESPONSE_TRAILERS;
    let Some((stream_id, filter)) = stream_of(c) else {
        return Ok(None);
    };
    let world = c.data().world.clone();
    let mut world = world.borrow_mut();
    let Some(stream) = world.streams.get_mut(&stream_id) else {
        return Ok(None);
    };
    let Some(slot) = stream.filters.get(filter) else {
        return Ok(None);
    };
    let flow = slot.flow(request);
    let live = if trailers {
        flow.in_trailers || flow.trailers_waiting
    } else {
        matches!(
            flow.headers,
            HeadersAt::InCallback | HeadersAt::Stopped { .. } | HeadersAt::PassedByData
        ) && !flow.headers_released
    };
    let in_log = stream.in_log;
    if !live && !in_log {
        return Ok(None);
    }
    let direction = stream.direction_mut(request);
    let headers = if trailers {
        match direction.trailers.as_mut() {
            Some(t) => t,
            None => return Ok(None),
        }
    } else {
        &mut direction.headers
    };
    Ok(Some(f(headers, live)))
}

/// Runs `f` on a buffer if the current phase exposes it (`Err(NotFound)` otherwise).
fn with_buffer<R>(
    c: Cx,
    buffer_type: i32,
    f: impl FnOnce(&mut Vec<u8>, bool) -> R,
) -> Result<R, Fail> {
    if !(0..=buffer::MAX).contains(&buffer_type) {
        return Err(Status::BadArgument.into());
    }
    match buffer_type {
        buffer::HTTP_REQUEST_BODY | buffer::HTTP_RESPONSE_BODY => {
            let request = buffer_type == buffer::HTTP_REQUEST_BODY;
            let (stream_id, filter) = stream_of(c).ok_or(Status::NotFound)?;
            let world = c.data().world.clone();
            let mut world = world.borrow_mut();
            let flow = world
                .streams
                .get_mut(&stream_id)
                .and_then(|s| s.filters.get_mut(filter))
                .map(|slot| slot.flow_mut(request))
                .ok_or(Status::NotFound)?;
            if !flow.body_visible {
                return Err(Status::NotFound.into());
            }
            Ok(f(&mut flow.held, true))
        }
        buffer::HTTP_CALL_RESPONSE_BODY => {
            let response = c
                .data_mut()
                .callout_response
                .as_mut()
                .ok_or(Status::NotFound)?;
            Ok(f(&mut response.body, false))
        }
        buffer::VM_CONFIGURATION => Ok(f(&mut c.data_mut().vm_configuration, false)),
        buffer::PLUGIN_CONFIGURATION => {
            let config = c
                .data_mut()
                .plugin_configuration
                .as_mut()
                .ok_or(Status::NotFound)?;
            Ok(f(config, false))
        }
        _ => Err(Status::NotFound.into()),
    }
}

fn current_stream(world: &mut World, at: Option<(u64, usize)>) -> Option<&mut StreamState> {
    world.streams.get_mut(&at?.0)
}

// ---------------------------------------------------------------------------------------------
// The env hostcalls.

fn proxy_log(c: Cx, level: i32, ptr: i32, len: i32) -> Hr {
    let level = LogLevel::from_abi(level).ok_or(Status::BadArgument)?;
    let message = read_string(c, ptr, len)?;
    c.data().log(level, message);
    Ok(())
}

fn proxy_get_log_level(c: Cx, ret: i32) -> Hr {
    let level = c.data().world.borrow().log_level.unwrap_or(LogLevel::Info);
    write_u32(c, ret, level.to_abi())
}

fn proxy_get_current_time_nanoseconds(c: Cx, ret: i32) -> Hr {
    let now = c.data().world.borrow().now_nanos();
    write_u64(c, ret, now)
}

fn proxy_set_tick_period_milliseconds(c: Cx, period_ms: i32) -> Hr {
    let data = c.data();
    let Some(root) = data.root_of(data.effective_context) else {
        return Ok(());
    };
    let now = data.world.borrow().elapsed_nanos;
    let period_nanos = u64::from(period_ms as u32) * 1_000_000;
    let data = c.data_mut();
    if period_nanos == 0 {
        data.ticks.remove(&root);
    } else {
        data.ticks.insert(
            root,
            Tick {
                period_nanos,
                next_nanos: now + period_nanos,
            },
        );
    }
    Ok(())
}

fn proxy_get_buffer_status(c: Cx, buffer_type: i32, ret_len: i32, ret_flags: i32) -> Hr {
    let len = with_buffer(c, buffer_type, |b, _| b.len())?;
    write_u32(c, ret_len, len as u32)?;
    write_u32(c, ret_flags, 0)
}

fn proxy_get_buffer_bytes(
    c: Cx,
    buffer_type: i32,
    start: i32,
    max: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Hr {
    let (start, max) = (start as u32 as usize, max as u32 as usize);
    if start
        .checked_add(max)
        .is_none_or(|end| end > u32::MAX as usize)
    {
        return Err(Status::BadArgument.into());
    }
    let bytes = with_buffer(c, buffer_type, |b, _| {
        if start >= b.len() {
            Vec::new()
        } else {
            b[start..(start + max).min(b.len())].to_vec()
        }
    })?;
    copy_out(c, &bytes, ret_ptr, ret_size)
}

fn proxy_set_buffer_bytes(
    c: Cx,
    buffer_type: i32,
    start: i32,
    size: i32,
    ptr: i32,
    len: i32,
) -> Hr {
    let data = read(c, ptr, len)?;
    let (start, size) = (start as u32 as usize, size as u32 as usize);
    with_buffer(c, buffer_type, |b, mutable| {
        if !mutable {
            return Err(Status::BadArgument);
        }
        if start == 0 {
            b.drain(..size.min(b.len()));
            b.splice(0..0, data);
        } else if start >= b.len() {
            b.extend_from_slice(&data);
        } else {
            return Err(Status::BadArgument);
        }
        Ok(())
    })??;
    Ok(())
}

fn proxy_get_header_map_pairs(c: Cx, map_type: i32, ret_ptr: i32, ret_size: i32) -> Hr {
    let bytes = with_map(c, map_type, |h, _| h.serialize())?.unwrap_or_default();
    copy_out(c, &bytes, ret_ptr, ret_size)
}

fn proxy_set_header_map_pairs(c: Cx, map_type: i32, ptr: i32, len: i32) -> Hr {
    let replacement = Headers::deserialize(&read(c, ptr, len)?);
    let changed = with_map(c, map_type, |h, mutable| {
        mutable.then(|| *h = replacement).is_some()
    })?;
    if changed == Some(true) {
        Ok(())
    } else {
        Err(Status::BadArgument.into())
    }
}

fn proxy_get_header_map_size(c: Cx, map_type: i32, ret: i32) -> Hr {
    let size = with_map(c, map_type, |h, _| h.byte_size())?.ok_or(Status::BadArgument)?;
    write_u32(c, ret, size as u32)
}

fn proxy_get_header_map_value(
    c: Cx,
    map_type: i32,
    key_ptr: i32,
    key_len: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Hr {
    let key = read_string(c, key_ptr, key_len)?;
    let in_log = stream_of(c)
        .and_then(|(id, _)| c.data().world.borrow().streams.get(&id).map(|s| s.in_log))
        .unwrap_or(false);
    let value = match with_map(c, map_type, |h, _| h.get_bytes(&key).map(<[u8]>::to_vec))? {
        Some(value) => value,
        None if in_log => return Err(Status::NotFound.into()),
        None => return Err(Status::BadArgument.into()),
    };
    let value = value.ok_or(Status::NotFound)?;
    copy_out(c, &value, ret_ptr, ret_size)
}

fn mutate_map(c: Cx, map_type: i32, f: impl FnOnce(&mut Headers)) -> Hr {
    match with_map(c, map_type, |h, mutable| mutable.then(|| f(h)).is_some())? {
        Some(true) => Ok(()),
        _ => Err(Status::BadArgument.into()),
    }
}

fn proxy_add_header_map_value(c: Cx, map_type: i32, kp: i32, kl: i32, vp: i32, vl: i32) -> Hr {
    let (key, value) = (read_string(c, kp, kl)?, read(c, vp, vl)?);
    mutate_map(c, map_type, |h| h.add(&key, &value))
}

fn proxy_replace_header_map_value(c: Cx, map_type: i32, kp: i32, kl: i32, vp: i32, vl: i32) -> Hr {
    let (key, value) = (read_string(c, kp, kl)?, read(c, vp, vl)?);
    mutate_map(c, map_type, |h| h.set(&key, &value))
}

fn proxy_remove_header_map_value(c: Cx, map_type: i32, kp: i32, kl: i32) -> Hr {
    let key = read_string(c, kp, kl)?;
    mutate_map(c, map_type, |h| h.remove(&key))
}

fn proxy_get_property(c: Cx, path_ptr: i32, path_len: i32, ret_ptr: i32, ret_size: i32) -> Hr {
    let raw = read(c, path_ptr, path_len)?;
    let path = String::from_utf8_lossy(&raw).into_owned();
    let segments: Vec<&str> = path.split('\0').collect();
    let bytes = resolve_property(c, &raw, &segments)?;
    copy_out(c, &bytes, ret_ptr, ret_size)
}

/// Envoy's attribute lookup: the stream's attributes (set by the test, or derived from the
/// headers), host-wide attributes, the plugin names, then `wasm.*` filter state.
fn resolve_property(c: Cx, raw: &[u8], segments: &[&str]) -> Result<Vec<u8>, Fail> {
    let at = stream_of(c);
    let plugin = match effective(c) {
        Some(ContextKind::Root { plugin } | ContextKind::Stream { plugin, .. }) => {
            c.data().plugins.get(plugin).cloned()
        }
        None => None,
    };
    let world = c.data().world.clone();
    let mut world = world.borrow_mut();
    let serialize = |value: &Value| {
        value
            .serialize()
            .ok_or(Fail::Status(Status::SerializationFailure))
    };
    if let Some(stream) = current_stream(&mut world, at) {
        if let Some(value) = stream.properties.lookup(segments) {
            return serialize(value);
        }
        if let Some(value) = derived_attribute(stream, segments) {
            return serialize(&value);
        }
        if let Some(value) = lookup_filter_state(stream, raw, segments) {
            return Ok(value);
        }
    }
    if let Some(value) = world.host_properties.lookup(segments) {
        return serialize(value);
    }
    if let (Some(plugin), [name]) = (plugin, segments) {
        match *name {
            "plugin_name" => return Ok(plugin.name.into_bytes()),
            "plugin_root_id" => return Ok(plugin.root_id.into_bytes()),
            "plugin_vm_id" => return Ok(plugin.vm_id.into_bytes()),
            _ => {}
        }
    }
    Err(Status::NotFound.into())
}

fn lookup_filter_state(stream: &StreamState, raw: &[u8], segments: &[&str]) -> Option<Vec<u8>> {
    if let ["filter_state", key] = segments {
        return stream.filter_state.get(key.as_bytes()).cloned();
    }
    if let Some(value) = stream.filter_state.get(&filter_state_key(raw)) {
        return Some(value.clone());
    }
    let first = segments.first()?;
    let value = stream
        .filter_state
        .get(&filter_state_key(first.as_bytes()))?;
    (segments.len() == 1).then(|| value.clone())
}

/// `request.*` and `response.*` attributes Envoy derives from the live header maps.
fn derived_attribute(stream: &StreamState, segments: &[&str]) -> Option<Value> {
    let (first, rest) = segments.split_first()?;
    let (second, rest) = rest.split_first()?;
    let header = |h: &Headers, name: &str| h.get(name).map(Value::String);
    let value = match (*first, *second) {
        ("request", _) if !stream.request.started => return None,
        ("request", "path") => header(&stream.request.headers, ":path")?,
        ("request", "url_path") => {
            let path = stream.request.headers.get(":path")?;
            Value::String(path.split('?').next().unwrap_or_default().to_string())
        }
        ("request", "query") => {
            let path = stream.request.headers.get(":path")?;
            Value::String(
                path.split_once('?')
                    .map(|(_, q)| q.to_string())
                    .unwrap_or_default(),
            )
        }
        ("request", "host") => header(&stream.request.headers, ":authority")?,
        ("request", "scheme") => header(&stream.request.headers, ":scheme")?,
        ("request", "method") => header(&stream.request.headers, ":method")?,
        ("request", "referer") => header(&stream.request.headers, "referer")?,
        ("request", "useragent") => header(&stream.request.headers, "user-agent")?,
        ("request", "id") => header(&stream.request.headers, "x-request-id")?,
        ("request", "headers") => headers_value(&stream.request.headers),
        ("response", _) if !stream.response.started => return None,
        ("response", "code") => Value::Int(stream.response.headers.get(":status")?.parse().ok()?),
        ("response", "headers") => headers_value(&stream.response.headers),
        _ => return None,
    };
    value.lookup(rest).cloned()
}

/// A header map as CEL sees it: repeated values joined with ",".
fn headers_value(headers: &Headers) -> Value {
    let mut entries: Vec<(String, Value)> = Vec::new();
    for (key, value) in headers.iter() {
        let value = String::from_utf8_lossy(value).into_owned();
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, Value::String(existing))) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => entries.push((key.to_string(), Value::String(value))),
        }
    }
    Value::Map(entries)
}

fn proxy_set_property(c: Cx, path_ptr: i32, path_len: i32, value_ptr: i32, value_len: i32) -> Hr {
    let (path, value) = (read(c, path_ptr, path_len)?, read(c, value_ptr, value_len)?);
    let at = stream_of(c).ok_or(Status::NotFound)?;
    let world = c.data().world.clone();
    let mut world = world.borrow_mut();
    let stream = current_stream(&mut world, Some(at)).ok_or(Status::NotFound)?;
    stream.filter_state.insert(filter_state_key(&path), value);
    Ok(())
}

fn proxy_get_shared_data(
    c: Cx,
    key_ptr: i32,
    key_len: i32,
    ret_ptr: i32,
    ret_size: i32,
    ret_cas: i32,
) -> Hr {
    let key = read(c, key_ptr, key_len)?;
    let vm_id = c.data().vm_id.clone();
    let (value, cas) = c
        .data()
        .world
        .borrow()
        .shared_data
        .get(&vm_id)
        .and_then(|m| m.get(&key).cloned())
        .ok_or(Status::NotFound)?;
    copy_out(c, &value, ret_ptr, ret_size)?;
    write_u32(c, ret_cas, cas)
}

fn proxy_set_shared_data(
    c: Cx,
    key_ptr: i32,
    key_len: i32,
    value_ptr: i32,
    value_len: i32,
    cas: i32,
) -> Hr {
    let (key, value) = (read(c, key_ptr, key_len)?, read(c, value_ptr, value_len)?);
    let vm_id = c.data().vm_id.clone();
    let world = c.data().world.clone();
    let mut world = world.borrow_mut();
    let current = world
        .shared_data
        .get(&vm_id)
        .and_then(|m| m.get(&key))
        .map(|(_, cas)| *cas);
    if let Some(current) = current {
        if cas != 0 && cas as u32 != current {
            return Err(Status::CasMismatch.into());
        }
    }
    let next = world.next_cas();
    world
        .shared_data
        .entry(vm_id)
        .or_default()
        .insert(key, (value, next));
    Ok(())
}

fn proxy_register_shared_queue(c: Cx, name_ptr: i32, name_len: i32, ret_id: i32) -> Hr {
    let name = read_string(c, name_ptr, name_len)?;
    let data = c.data();
    let (vm_id, vm, root) = (
        data.vm_id.clone(),
        data.vm_index,
        data.root_of(data.effective_context).unwrap_or(0),
    );
    let id = {
        let mut world = data.world.borrow_mut();
        match world
            .queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
        {
            Some(index) => {
                world.queues[index].owner_vm = vm;
                world.queues[index].owner_root = root;
                index as u32 + 1
            }
            None => {
                world.queues.push(SharedQueue {
                    vm_id,
                    name,
                    items: Default::default(),
                    owner_vm: vm,
                    owner_root: root,
                });
                world.queues.len() as u32
            }
        }
    };
    c.data_mut().queue_registrations.push(id);
    write_u32(c, ret_id, id)
}

fn proxy_resolve_shared_queue(
    c: Cx,
    vm_ptr: i32,
    vm_len: i32,
    name_ptr: i32,
    name_len: i32,
    ret_id: i32,
) -> Hr {
    let (vm_id, name) = (
        read_string(c, vm_ptr, vm_len)?,
        read_string(c, name_ptr, name_len)?,
    );
    let vm_id = if vm_id.is_empty() {
        c.data().vm_id.clone()
    } else {
        vm_id
    };
    let position = c
        .data()
        .world
        .borrow()
        .queues
        .iter()
        .position(|q| q.vm_id == vm_id && q.name == name);
    let id = position.ok_or(Status::NotFound)? as u32 + 1;
    write_u32(c, ret_id, id)
}

fn proxy_enqueue_shared_queue(c: Cx, queue: i32, ptr: i32, len: i32) -> Hr {
    let item = read(c, ptr, len)?;
    let world = c.data().world.clone();
    let mut world = world.borrow_mut();
    let index = (queue as u32 as usize)
        .checked_sub(1)
        .ok_or(Status::NotFound)?;
    let target = world.queues.get_mut(index).ok_or(Status::NotFound)?;
    target.items.push_back(item);
    let event = Event::QueueReady {
        vm: target.owner_vm,
        root: target.owner_root,
        queue: queue as u32,
    };
    world.events.push_back(event);
    Ok(())
}

fn proxy_dequeue_shared_queue(c: Cx, queue: i32, ret_ptr: i32, ret_size: i32) -> Hr {
    let item = {
        let mut world = c.data().world.borrow_mut();
        let index = (queue as u32 as usize)
            .checked_sub(1)
            .ok_or(Status::NotFound)?;
        let target = world.queues.get_mut(index).ok_or(Status::NotFound)?;
        target.items.pop_front().ok_or(Status::Empty)?
    };
    copy_out(c, &item, ret_ptr, ret_size)
}

fn proxy_continue_stream(c: Cx, which: i32) -> Hr {
    let request = match which {
        stream_type::HTTP_REQUEST => true,
        stream_type::HTTP_RESPONSE => false,
        stream_type::UPSTREAM => return Err(Status::Unimplemented.into()),
        2 => return Ok(()),
        _ => return Err(Status::BadArgument.into()),
    };
    let Some(at) = stream_of(c) else {
        return Ok(());
    };
    {
        let world = c.data().world.clone();
        let mut world = world.borrow_mut();
        if let Some(slot) =
            current_stream(&mut world, Some(at)).and_then(|s| s.filters.get_mut(at.1))
        {
            slot.flow_mut(request).headers_released = true;
        }
    }
    let context = c.data().effective_context;
    c.data_mut()
        .actions
        .push(DeferredAction::Continue { context, request });
    Ok(())
}

fn proxy_close_stream(c: Cx, which: i32) -> Hr {
    if !(0..=3).contains(&which) {
        return Err(Status::BadArgument.into());
    }
    let context = c.data().effective_context;
    if stream_of(c).is_some() {
        c.data_mut().actions.push(DeferredAction::Close { context });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn proxy_send_local_response(
    c: Cx,
    status: i32,
    details_ptr: i32,
    details_len: i32,
    body_ptr: i32,
    body_len: i32,
    headers_ptr: i32,
    headers_len: i32,
    _grpc_status: i32,
) -> Hr {
    let details = read_string(c, details_ptr, details_len)?;
    let details: String = details
        .chars()
        .map(|ch| if ch.is_whitespace() { '_' } else { ch })
        .collect();
    let body = read(c, body_ptr, body_len)?;
    let headers = Headers::deserialize(&read(c, headers_ptr, headers_len)?);
    let context = c.data().effective_context;
    if stream_of(c).is_some() {
        let reply = LocalReplyRequest {
            status: status as u32,
            details,
            body,
            headers,
        };
        c.data_mut()
            .actions
            .push(DeferredAction::LocalReply { context, reply });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn proxy_http_call(
    c: Cx,
    up_ptr: i32,
    up_len: i32,
    hdr_ptr: i32,
    hdr_len: i32,
    body_ptr: i32,
    body_len: i32,
    trl_ptr: i32,
    trl_len: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> Hr {
    let cluster = read_string(c, up_ptr, up_len)?;
    let mut headers = Headers::deserialize(&read(c, hdr_ptr, hdr_len)?);
    let body = read(c, body_ptr, body_len)?;
    if !body.is_empty() {
        // Envoy's `httpCall` sets the content length of a body it sends.
        headers.set("content-length", body.len().to_string().as_bytes());
    }
    let trailers = Headers::deserialize(&read(c, trl_ptr, trl_len)?);
    if timeout_ms < 0 {
        return Err(Status::BadArgument.into());
    }
    let has = |name: &str| headers.get(name).is_some_and(|v| !v.is_empty());
    if !has(":path") || !has(":method") || !(has(":authority") || has("host")) {
        return Err(Status::BadArgument.into());
    }
    let data = c.data();
    let root = data
        .root_of(data.effective_context)
        .ok_or(Status::BadArgument)?;
    let root_id = data.effective_root_id();
    let (vm, worker) = (data.vm_index, data.worker.unwrap_or(0));
    let token = data.next_http_token + 4;
    {
        let mut world = data.world.borrow_mut();
        if !world.clusters.contains(&cluster) {
            return Err(Status::BadArgument.into());
        }
        world.next_http_call_id += 1;
        let timeout = (timeout_ms > 0).then(|| std::time::Duration::from_millis(timeout_ms as u64));
        let deadline_nanos = timeout.map(|t| world.elapsed_nanos + t.as_nanos() as u64);
        let call = HttpCall {
            id: world.next_http_call_id,
            cluster,
            headers,
            body,
            trailers,
            timeout,
            root_id,
            worker,
            vm,
            root_context: root,
            token,
            deadline_nanos,
        };
        world.dispatched_calls.push(call.clone());
        world.http_calls.push(call);
    }
    c.data_mut().next_http_token = token;
    write_u32(c, ret_token, token)
}

fn proxy_get_status(c: Cx, ret_code: i32, ret_ptr: i32, ret_size: i32) -> Hr {
    let (code, message) = c.data().status.clone();
    write_u32(c, ret_code, code)?;
    copy_out(c, &message, ret_ptr, ret_size)
}

fn proxy_define_metric(c: Cx, kind: i32, name_ptr: i32, name_len: i32, ret_id: i32) -> Hr {
    let kind_value = MetricKind::from_abi(kind).ok_or(Status::BadArgument)?;
    let name = read_string(c, name_ptr, name_len)?;
    let full_name = format!("{CUSTOM_NAMESPACE}.{name}");
    let data = c.data_mut();
    let id = match data.metric_names.get(&full_name) {
        Some(id) => *id,
        None => {
            let id = data.next_metric_index * 4 + kind as u32;
            data.next_metric_index += 1;
            data.metric_ids.insert(id, full_name.clone());
            data.metric_names.insert(full_name.clone(), id);
            id
        }
    };
    data.world
        .borrow_mut()
        .metrics
        .define(&full_name, kind_value);
    write_u32(c, ret_id, id)
}

fn with_metric<R>(
    c: Cx,
    id: i32,
    f: impl FnOnce(&mut crate::metrics::Metric) -> Result<R, Status>,
) -> Result<R, Fail> {
    let name = c
        .data()
        .metric_ids
        .get(&(id as u32))
        .cloned()
        .ok_or(Status::NotFound)?;
    let mut world = c.data().world.borrow_mut();
    let metric = world
        .metrics
        .by_name
        .get_mut(&name)
        .ok_or(Status::NotFound)?;
    Ok(f(metric)?)
}

fn proxy_increment_metric(c: Cx, id: i32, delta: i64) -> Hr {
    with_metric(c, id, |m| match m.kind {
        MetricKind::Counter if delta > 0 => {
            m.value = m.value.wrapping_add(delta as u64);
            Ok(())
        }
        MetricKind::Gauge => {
            m.value = (m.value as i64).wrapping_add(delta) as u64;
            Ok(())
        }
        _ => Err(Status::BadArgument),
    })
}

fn proxy_record_metric(c: Cx, id: i32, value: i64) -> Hr {
    with_metric(c, id, |m| {
        match m.kind {
            MetricKind::Counter => m.value = m.value.wrapping_add(value as u64),
            MetricKind::Gauge => m.value = value as u64,
            MetricKind::Histogram => m.samples.push(value as u64),
        }
        Ok(())
    })
}

fn proxy_get_metric(c: Cx, id: i32, ret: i32) -> Hr {
    let value = with_metric(c, id, |m| match m.kind {
        MetricKind::Histogram => Err(Status::BadArgument),
        _ => Ok(m.value),
    })?;
    write_u64(c, ret, value)
}

fn proxy_set_effective_context(c: Cx, context: i32) -> Hr {
    let context = context as u32;
    if !c.data().contexts.contains_key(&context) {
        return Err(Status::BadArgument.into());
    }
    c.data_mut().effective_context = context;
    Ok(())
}

fn proxy_done(_c: Cx) -> Hr {
    Ok(())
}

fn proxy_call_foreign_function(
    c: Cx,
    name_ptr: i32,
    name_len: i32,
    _args_ptr: i32,
    _args_len: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Hr {
    match read_string(c, name_ptr, name_len)?.as_str() {
        "clear_route_cache" | "declare_property" => copy_out(c, &[], ret_ptr, ret_size),
        _ => Err(Status::NotFound.into()),
    }
}

fn grpc_unavailable(_c: Cx) -> Hr {
    Err(Status::ParseFailure.into())
}

fn grpc_token_unknown(_c: Cx) -> Hr {
    Err(Status::NotFound.into())
}

fn envoy_resolve_dns(_c: Cx, _ptr: i32, _len: i32, _ret: i32) -> Hr {
    Err(Status::InternalFailure.into())
}

// ---------------------------------------------------------------------------------------------
// WASI (errno results).

const ERRNO_BADF: i32 = 8;
const ERRNO_INVAL: i32 = 28;
const ERRNO_NOENT: i32 = 44;
const ERRNO_NOSYS: i32 = 52;
const ERRNO_NOTSUP: i32 = 58;
const ERRNO_FAULT: i32 = 21;

fn errno(result: Result<i32, Fail>) -> wasmtime::Result<i32> {
    match result {
        Ok(code) => Ok(code),
        Err(Fail::Status(_)) => Ok(ERRNO_FAULT),
        Err(Fail::Trap(e)) => Err(e),
    }
}

fn fd_write(c: Cx, fd: i32, iovs: i32, iovs_len: i32, ret_written: i32) -> Result<i32, Fail> {
    let mut bytes = Vec::new();
    for index in 0..iovs_len {
        let iov = read(c, iovs + index * 8, 8)?;
        let ptr = u32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        bytes.extend(read(c, ptr as i32, len as i32)?);
    }
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Ok(ERRNO_BADF),
    };
    let written = bytes.len() as u32;
    let mut message = String::from_utf8_lossy(&bytes).into_owned();
    if message.ends_with('\n') {
        message.pop();
    }
    c.data().log(level, message);
    write_u32(c, ret_written, written)?;
    Ok(0)
}

fn fd_fdstat_get(c: Cx, fd: i32, ret: i32) -> Result<i32, Fail> {
    if fd != 1 && fd != 2 {
        return Ok(ERRNO_BADF);
    }
    let mut stat = [0u8; 24];
    stat[0] = 2; // character device
    stat[8..16].copy_from_slice(&64u64.to_le_bytes()); // rights: FD_WRITE
    write(c, ret as u32, &stat)?;
    Ok(0)
}

fn write_two_zeros(c: Cx, a: i32, b: i32) -> Result<i32, Fail> {
    write_u32(c, a, 0)?;
    write_u32(c, b, 0)?;
    Ok(0)
}

/// The WASI environment entries, `k=v\0` each, as Envoy serializes them.
fn environ_entries(c: &Caller<'_, VmData>) -> Vec<Vec<u8>> {
    c.data()
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

fn environ_sizes_get(c: Cx, count_ptr: i32, size_ptr: i32) -> Result<i32, Fail> {
    let entries = environ_entries(c);
    let size: usize = entries.iter().map(Vec::len).sum();
    write_u32(c, count_ptr, entries.len() as u32)?;
    write_u32(c, size_ptr, size as u32)?;
    Ok(0)
}

fn environ_get(c: Cx, array_ptr: i32, buf_ptr: i32) -> Result<i32, Fail> {
    let entries = environ_entries(c);
    let mut at = buf_ptr as u32;
    for (i, entry) in entries.iter().enumerate() {
        write_u32(c, array_ptr + 4 * i as i32, at)?;
        write(c, at, entry)?;
        at += entry.len() as u32;
    }
    Ok(0)
}

fn clock_time_get(c: Cx, clock: i32, _precision: i64, ret: i32) -> Result<i32, Fail> {
    let (wall, monotonic) = {
        let world = c.data().world.borrow();
        (world.now_nanos(), world.elapsed_nanos)
    };
    let value = match clock {
        0 => wall,
        1 => monotonic,
        _ => return Ok(ERRNO_NOTSUP),
    };
    write_u64(c, ret, value)?;
    Ok(0)
}

fn clock_res_get(c: Cx, _clock: i32, ret: i32) -> Result<i32, Fail> {
    write_u64(c, ret, 1)?;
    Ok(0)
}

fn random_get(c: Cx, ptr: i32, len: i32) -> Result<i32, Fail> {
    if len as u32 > 65536 {
        return Ok(ERRNO_INVAL);
    }
    let bytes = c
        .data()
        .world
        .borrow_mut()
        .random_bytes(len as u32 as usize);
    write(c, ptr as u32, &bytes)?;
    Ok(0)
}

fn poll_oneoff(c: Cx, _in: i32, _out: i32, _n: i32, ret: i32) -> Result<i32, Fail> {
    write_u32(c, ret, 0)?;
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// Registration.

/// Registers a hostcall in `env` returning a `proxy_status_t`.
macro_rules! env_fn {
    ($linker:expr, $name:literal, $f:expr, ($($arg:ident : $ty:ty),*)) => {
        $linker.func_wrap("env", $name, |mut caller: Caller<'_, VmData>, $($arg: $ty),*| -> wasmtime::Result<i32> {
            restrict(&caller, $name, false)?;
            *caller.data().world.borrow_mut().hostcalls.entry($name).or_insert(0) += 1;
            finish($f(&mut caller, $($arg),*))
        })?;
    };
}

/// Registers a WASI function under both module names.
macro_rules! wasi_fn {
    ($linker:expr, $name:literal, $f:expr, ($($arg:ident : $ty:ty),*)) => {
        for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
            $linker.func_wrap(module, $name, |mut caller: Caller<'_, VmData>, $($arg: $ty),*| -> wasmtime::Result<i32> {
                restrict(&caller, $name, true)?;
                errno($f(&mut caller, $($arg),*))
            })?;
        }
    };
}

/// A WASI function that only answers a fixed errno.
macro_rules! wasi_stub {
    ($linker:expr, $name:literal, $code:expr, ($($ty:ty),*)) => {
        for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
            $linker.func_wrap(module, $name, |_caller: Caller<'_, VmData>, $(_: $ty),*| -> i32 { $code })?;
        }
    };
}

/// Every function Envoy 1.40 registers for an ABI 0.2.x module.
pub(crate) fn define(linker: &mut Linker<VmData>) -> wasmtime::Result<()> {
    env_fn!(linker, "proxy_log", proxy_log, (a: i32, b: i32, d: i32));
    env_fn!(linker, "proxy_get_log_level", proxy_get_log_level, (a: i32));
    env_fn!(linker, "proxy_get_current_time_nanoseconds", proxy_get_current_time_nanoseconds, (a: i32));
    env_fn!(linker, "proxy_set_tick_period_milliseconds", proxy_set_tick_period_milliseconds, (a: i32));
    env_fn!(linker, "proxy_get_buffer_status", proxy_get_buffer_status, (a: i32, b: i32, d: i32));
    env_fn!(linker, "proxy_get_buffer_bytes", proxy_get_buffer_bytes, (a: i32, b: i32, d: i32, e: i32, f: i32));
    env_fn!(linker, "proxy_set_buffer_bytes", proxy_set_buffer_bytes, (a: i32, b: i32, d: i32, e: i32, f: i32));
    env_fn!(linker, "proxy_get_header_map_pairs", proxy_get_header_map_pairs, (a: i32, b: i32, d: i32));
    env_fn!(linker, "proxy_set_header_map_pairs", proxy_set_header_map_pairs, (a: i32, b: i32, d: i32));
    env_fn!(linker, "proxy_get_header_map_size", proxy_get_header_map_size, (a: i32, b: i32));
    env_fn!(linker, "proxy_get_header_map_value", proxy_get_header_map_value, (a: i32, b: i32, d: i32, e: i32, f: i32));
    env_fn!(linker, "proxy_add_header_map_value", proxy_add_header_map_value, (a: i32, b: i32, d: i32, e: i32, f: i32));
    env_fn!(linker, "proxy_replace_header_map_value", proxy_replace_header_map_value, (a: i32, b: i32, d: i32, e: i32, f: i32));
    env_fn!(linker, "proxy_remove_header_map_value", proxy_remove_header_map_value, (a: i32, b: i32, d: i32));
    env_fn!(linker, "proxy_get_property", proxy_get_property, (a: i32, b: i32, d: i32, e: i32));
    env_fn!(linker, "proxy_set_property", proxy_set_property, (a: i32, b: i32, d: i32, e: i32));
    env_fn!(linker, "proxy_get_shared_data", proxy_get_shared_data, (a: i32, b: i32, d: i32, e: i32, f: i32));
    env_fn!(linker, "proxy_set_shared_data", proxy_set_shared_data, (a: i32, b: i32, d: i32, e: i32, f: i32));
    env_fn!(linker, "proxy_register_shared_queue", proxy_register_shared_queue, (a: i32, b: i32, d: i32));
    env_fn!(linker, "proxy_resolve_shared_queue", proxy_resolve_shared_queue, (a: i32, b: i32, d: i32, e: i32, f: i32));
    env_fn!(linker, "proxy_enqueue_shared_queue", proxy_enqueue_shared_queue, (a: i32, b: i32, d: i32));
    env_fn!(linker, "proxy_dequeue_shared_queue", proxy_dequeue_shared_queue, (a: i32, b: i32, d: i32));
    env_fn!(linker, "proxy_continue_stream", proxy_continue_stream, (a: i32));
    env_fn!(linker, "proxy_close_stream", proxy_close_stream, (a: i32));
    env_fn!(linker, "proxy_send_local_response", proxy_send_local_response,
        (a: i32, b: i32, d: i32, e: i32, f: i32, g: i32, h: i32, i: i32));
    env_fn!(linker, "proxy_http_call", proxy_http_call,
        (a: i32, b: i32, d: i32, e: i32, f: i32, g: i32, h: i32, i: i32, j: i32, k: i32));
    env_fn!(linker, "proxy_grpc_call", |c: Cx, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| grpc_unavailable(c),
        (a: i32, b: i32, d: i32, e: i32, f: i32, g: i32, h: i32, i: i32, j: i32, k: i32, l: i32, m: i32));
    env_fn!(linker, "proxy_grpc_stream", |c: Cx, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| grpc_unavailable(c),
        (a: i32, b: i32, d: i32, e: i32, f: i32, g: i32, h: i32, i: i32, j: i32));
    env_fn!(linker, "proxy_grpc_send", |c: Cx, _: i32, _: i32, _: i32, _: i32| grpc_token_unknown(c), (a: i32, b: i32, d: i32, e: i32));
    env_fn!(linker, "proxy_grpc_cancel", |c: Cx, _: i32| grpc_token_unknown(c), (a: i32));
    env_fn!(linker, "proxy_grpc_close", |c: Cx, _: i32| grpc_token_unknown(c), (a: i32));
    env_fn!(linker, "proxy_get_status", proxy_get_status, (a: i32, b: i32, d: i32));
    env_fn!(linker, "proxy_define_metric", proxy_define_metric, (a: i32, b: i32, d: i32, e: i32));
    env_fn!(linker, "proxy_increment_metric", proxy_increment_metric, (a: i32, b: i64));
    env_fn!(linker, "proxy_record_metric", proxy_record_metric, (a: i32, b: i64));
    env_fn!(linker, "proxy_get_metric", proxy_get_metric, (a: i32, b: i32));
    env_fn!(linker, "proxy_set_effective_context", proxy_set_effective_context, (a: i32));
    env_fn!(linker, "proxy_done", proxy_done, ());
    env_fn!(linker, "proxy_call_foreign_function", proxy_call_foreign_function, (a: i32, b: i32, d: i32, e: i32, f: i32, g: i32));
    env_fn!(linker, "envoy_resolve_dns", envoy_resolve_dns, (a: i32, b: i32, d: i32));
    linker.func_wrap(
        "env",
        "pthread_equal",
        |_c: Caller<'_, VmData>, a: i32, b: i32| -> i32 { i32::from(a == b) },
    )?;
    linker.func_wrap(
        "env",
        "emscripten_notify_memory_growth",
        |_c: Caller<'_, VmData>, _a: i32| {},
    )?;

    wasi_fn!(linker, "fd_write", fd_write, (a: i32, b: i32, d: i32, e: i32));
    wasi_fn!(linker, "fd_fdstat_get", fd_fdstat_get, (a: i32, b: i32));
    wasi_fn!(linker, "environ_sizes_get", environ_sizes_get, (a: i32, b: i32));
    wasi_fn!(linker, "environ_get", environ_get, (a: i32, b: i32));
    wasi_fn!(linker, "args_sizes_get", write_two_zeros, (a: i32, b: i32));
    wasi_fn!(linker, "clock_time_get", clock_time_get, (a: i32, b: i64, d: i32));
    wasi_fn!(linker, "clock_res_get", clock_res_get, (a: i32, b: i32));
    wasi_fn!(linker, "random_get", random_get, (a: i32, b: i32));
    wasi_fn!(linker, "poll_oneoff", poll_oneoff, (a: i32, b: i32, d: i32, e: i32));
    wasi_stub!(linker, "args_get", 0, (i32, i32));
    wasi_stub!(linker, "fd_read", ERRNO_NOSYS, (i32, i32, i32, i32));
    wasi_stub!(linker, "fd_seek", 0, (i32, i64, i32, i32));
    wasi_stub!(linker, "fd_close", 0, (i32));
    wasi_stub!(linker, "fd_fdstat_set_flags", ERRNO_NOSYS, (i32, i32));
    wasi_stub!(linker, "fd_fdstat_set_rights", ERRNO_NOSYS, (i32, i64, i64));
    wasi_stub!(linker, "fd_prestat_get", ERRNO_BADF, (i32, i32));
    wasi_stub!(linker, "fd_prestat_dir_name", ERRNO_NOSYS, (i32, i32, i32));
    wasi_stub!(linker, "fd_advise", ERRNO_NOSYS, (i32, i64, i64, i32));
    wasi_stub!(linker, "fd_allocate", ERRNO_NOSYS, (i32, i64, i64));
    wasi_stub!(linker, "fd_datasync", ERRNO_NOSYS, (i32));
    wasi_stub!(linker, "fd_sync", ERRNO_NOSYS, (i32));
    wasi_stub!(linker, "fd_filestat_get", ERRNO_BADF, (i32, i32));
    wasi_stub!(linker, "fd_filestat_set_size", ERRNO_NOSYS, (i32, i64));
    wasi_stub!(
        linker,
        "fd_filestat_set_times",
        ERRNO_NOSYS,
        (i32, i64, i64, i32)
    );
    wasi_stub!(linker, "fd_pread", ERRNO_NOSYS, (i32, i32, i32, i64, i32));
    wasi_stub!(linker, "fd_pwrite", ERRNO_NOSYS, (i32, i32, i32, i64, i32));
    wasi_stub!(linker, "fd_readdir", ERRNO_NOSYS, (i32, i32, i32, i64, i32));
    wasi_stub!(linker, "fd_renumber", ERRNO_NOSYS, (i32, i32));
    wasi_stub!(linker, "fd_tell", ERRNO_NOSYS, (i32, i32));
    wasi_stub!(
        linker,
        "path_open",
        ERRNO_NOENT,
        (i32, i32, i32, i32, i32, i64, i64, i32, i32)
    );
    wasi_stub!(
        linker,
        "path_create_directory",
        ERRNO_NOSYS,
        (i32, i32, i32)
    );
    wasi_stub!(
        linker,
        "path_filestat_get",
        ERRNO_NOSYS,
        (i32, i32, i32, i32, i32)
    );
    wasi_stub!(
        linker,
        "path_filestat_set_times",
        ERRNO_NOSYS,
        (i32, i32, i32, i32, i64, i64, i32)
    );
    wasi_stub!(
        linker,
        "path_link",
        ERRNO_NOSYS,
        (i32, i32, i32, i32, i32, i32, i32)
    );
    wasi_stub!(
        linker,
        "path_readlink",
        ERRNO_NOSYS,
        (i32, i32, i32, i32, i32, i32)
    );
    wasi_stub!(
        linker,
        "path_remove_directory",
        ERRNO_NOSYS,
        (i32, i32, i32)
    );
    wasi_stub!(
        linker,
        "path_rename",
        ERRNO_NOSYS,
        (i32, i32, i32, i32, i32, i32)
    );
    wasi_stub!(
        linker,
        "path_symlink",
        ERRNO_NOSYS,
        (i32, i32, i32, i32, i32)
    );
    wasi_stub!(linker, "path_unlink_file", ERRNO_NOSYS, (i32, i32, i32));
    wasi_stub!(linker, "sched_yield", 0, ());
    wasi_stub!(linker, "proc_raise", ERRNO_NOSYS, (i32));
    wasi_stub!(linker, "sock_accept", ERRNO_NOSYS, (i32, i32, i32));
    wasi_stub!(
        linker,
        "sock_recv",
        ERRNO_NOSYS,
        (i32, i32, i32, i32, i32, i32)
    );
    wasi_stub!(linker, "sock_send", ERRNO_NOSYS, (i32, i32, i32, i32, i32));
    wasi_stub!(linker, "sock_shutdown", ERRNO_NOSYS, (i32, i32));
    for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
        // Envoy logs and returns: proc_exit does not trap (Rust's exit then hits `unreachable`).
        linker.func_wrap(
            module,
            "proc_exit",
            |caller: Caller<'_, VmData>, code: i32| {
                caller
                    .data()
                    .log(LogLevel::Error, format!("proc_exit({code}) called"));
            },
        )?;
    }
    Ok(())
}

/// Sets the callout response visible during `proxy_on_http_call_response`.
pub(crate) fn callout_status(success: bool) -> (u32, Vec<u8>) {
    if success {
        (0, Vec::new())
    } else {
        (11, b"reset".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use crate::headers::parse_pairs;

    #[test]
    fn pairs_parser_accepts_what_the_sdk_serializes_for_an_empty_map() {
        assert_eq!(parse_pairs(&[0, 0, 0, 0]), Some(vec![]));
    }
}
