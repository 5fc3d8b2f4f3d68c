// The three things certsep needs from the kernel that Node does not expose:
//  - peerCredentials(fd): SO_PEERCRED on a connected AF_UNIX socket, i.e. the uid/gid/pid of
//    the process that connected (the kernel's word, not the peer's).
//  - notify(path, message): one sd_notify(3) datagram to $NOTIFY_SOCKET, sent from this
//    process itself so the unit can keep NotifyAccess=main.
//  - listenTcp(address, port): a listening TCP socket that no event loop watches, as systemd
//    holds a ListenStream= port: certsep-supervisor keeps it open for the daemon it passes it to,
//    so no other process can bind the port, and only that daemon accepts on it (a socket made
//    with node:net would be accepted on by the supervisor's own event loop too).
#include <napi.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

Napi::Value ThrowErrno(Napi::Env env, const char* what, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "peerCredentials(fd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred;
  socklen_t len = sizeof(cred);
  std::memset(&cred, 0, sizeof(cred));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ThrowErrno(env, "getsockopt(SO_PEERCRED)", errno);
  }
  if (len != sizeof(cred)) {
    Napi::Error::New(env, "getsockopt(SO_PEERCRED): short answer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

Napi::Value Notify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(env, "notify(socketPath: string, message: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string message = info[1].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    Napi::Error::New(env, "notify: bad NOTIFY_SOCKET").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  // A leading '@' names a socket in the abstract namespace (sd_notify(3)).
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t addrlen = offsetof(struct sockaddr_un, sun_path) + path.size();
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket(AF_UNIX, SOCK_DGRAM)", errno);
  ssize_t n = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                     reinterpret_cast<struct sockaddr*>(&addr), addrlen);
  int err = errno;
  close(fd);
  if (n < 0) return ThrowErrno(env, "sendto(NOTIFY_SOCKET)", err);
  return env.Undefined();
}

Napi::Value ListenTcp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "listenTcp(address: string, port: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string address = info[0].As<Napi::String>().Utf8Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  if (port < 1 || port > 65535) {
    Napi::RangeError::New(env, "listenTcp: port must be 1-65535").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  struct sockaddr_storage addr;
  std::memset(&addr, 0, sizeof(addr));
  socklen_t addrlen;
  auto* v4 = reinterpret_cast<struct sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<struct sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    addrlen = sizeof(*v4);
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    addrlen = sizeof(*v6);
  } else {
    Napi::Error::New(env, "listenTcp: not an IP address: " + address).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // CLOEXEC: only the daemon it is handed to (as a stdio fd, which dup2 makes inheritable) gets it.
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket(SOCK_STREAM)", errno);
  int one = 1;
  // As systemd's ListenStream=: SO_REUSEADDR (a restart finds the port in TIME_WAIT), never
  // SO_REUSEPORT (which would let another socket of the same uid share the port).
  bool ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            (addr.ss_family != AF_INET6 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0) &&
            bind(fd, reinterpret_cast<struct sockaddr*>(&addr), addrlen) == 0 && listen(fd, SOMAXCONN) == 0;
  if (!ok) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, ("listen on " + address + " port " + std::to_string(port)).c_str(), err);
  }
  return Napi::Number::New(env, fd);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials));
  exports.Set("notify", Napi::Function::New(env, Notify));
  exports.Set("listenTcp", Napi::Function::New(env, ListenTcp));
  return exports;
}

}  // namespace

NODE_API_MODULE(certsep_native, Init)
