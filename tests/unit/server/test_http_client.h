// A minimal blocking HTTP/1.1 client over POSIX sockets for the in-process server tests: one request per
// connection (Connection: close) or several on one kept-alive connection; decodes chunked bodies.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>

namespace dsa::server::testing {

struct HttpResponse {
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;                            // de-chunked
};

inline int connect_loopback(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

inline bool send_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

inline std::string format_request(const std::string& method, const std::string& path, const std::string& body,
                                  const std::map<std::string, std::string>& headers, bool close) {
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n";
    bool has_ct = false;
    for (const auto& [k, v] : headers) {
        req += k + ": " + v + "\r\n";
        has_ct = has_ct || k == "Content-Type";
    }
    if (!body.empty() && !has_ct) req += "Content-Type: application/json\r\n";
    if (!body.empty() || method == "POST" || method == "PUT") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (close) req += "Connection: close\r\n";
    return req + "\r\n" + body;
}

// Reads one response from `fd`; `buf` carries bytes read past it (keep-alive). Returns false on EOF / error.
inline bool read_response(int fd, std::string& buf, HttpResponse& out) {
    auto fill = [&]() {
        char tmp[65536];
        ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) return false;
        buf.append(tmp, static_cast<size_t>(n));
        return true;
    };
    size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos)
        if (!fill()) return false;
    std::string head = buf.substr(0, head_end);
    buf.erase(0, head_end + 4);
    out = HttpResponse{};
    out.status = std::stoi(head.substr(9, 3));
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
        size_t next = head.find("\r\n", pos + 2);
        std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
        size_t colon = line.find(':');
        if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            out.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
        }
        pos = next;
    }
    if (out.headers.count("transfer-encoding")) {
        for (;;) {
            size_t eol;
            while ((eol = buf.find("\r\n")) == std::string::npos)
                if (!fill()) return false;
            size_t size = std::stoul(buf.substr(0, eol), nullptr, 16);
            while (buf.size() < eol + 2 + size + 2)
                if (!fill()) return false;
            out.body += buf.substr(eol + 2, size);
            buf.erase(0, eol + 2 + size + 2);
            if (size == 0) return true;
        }
    }
    size_t len = out.headers.count("content-length") ? std::stoul(out.headers["content-length"]) : 0;
    while (buf.size() < len)
        if (!fill()) return false;
    out.body = buf.substr(0, len);
    buf.erase(0, len);
    return true;
}

inline HttpResponse http_call(int port, const std::string& method, const std::string& path, const std::string& body = "",
                              const std::map<std::string, std::string>& headers = {}) {
    HttpResponse resp;
    int fd = connect_loopback(port);
    if (fd < 0) return resp;
    std::string buf;
    if (send_all(fd, format_request(method, path, body, headers, /*close=*/true))) read_response(fd, buf, resp);
    ::close(fd);
    return resp;
}

}  // namespace dsa::server::testing
