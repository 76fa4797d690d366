#!/usr/bin/env python3
"""Writes the hand-made seed inputs of fuzz/corpus/<target>/ (seed-*.bin).

Run from anywhere: python3 fuzz/seeds.py. The other corpus files were added by
libFuzzer (-merge=1, docs/fuzzing.md). Seeds: every request shape of
tests/job/parse_test.cpp and SPEC §3/§8, form bodies with brackets, and HTTP
requests to every route of src/http/server.hpp.
"""
import base64, os, hashlib

here = os.path.dirname(os.path.abspath(__file__))

def write(target, items):
    d = os.path.join(here, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    for i, data in enumerate(items):
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, 'seed-%03d.bin' % i), 'wb') as f:
            f.write(data)

json_bodies = [
    '{"query": "UPDATE t SET a = 1"}',
    '{"query": ["select 1", "select 2"]}',
    '{"query": {"query": [{"query": "select 1", "onsuccess": "s1", "onerror": "e1", "timeout": 1000, "id": "a:b:c"}, {"query": "select 2"}], "onsuccess": "js", "onerror": "je"}}',
    '{"query": [{"query": "select 1", "onsuccess": "s1", "onerror": "e1"}, "select 2"], "onsuccess": "js", "onerror": "je"}',
    '{"query": "update t", "onsuccess": "s", "onerror": "e"}',
    '{"query": {"query": [{"query": "q", "onerror": "e", "status": "done"}]}, "status": "done", "job_id": "mine", "x": 1}',
    '{"query": [{"query": "q", "onsuccess": null, "onerror": ""}], "onsuccess": null}',
    '{}', '{"query": null}', '{"query": ""}', '{"query": []}', '[1, 2]', '"select 1"', '42',
    '{"query": 42}', '{"query": {"a": 1}}', '{"query": ["a", 1]}', '{"query": [["a"]]}',
    '{"query": ["a", {"query": "b", "onerror": 1}]}',
    '{"query": {"query": [{"query": "a", "timeout": "1000"}]}}',
    '{"query": ["x", {"query": "a", "timeout": -1}]}',
    '{"query": [{"query": "a", "timeout": 1.5}]}',
    '{"query": [{"query": "a", "timeout": 18446744073709551615}]}',
    '{"query": "a",',
    '{"query": {"query": [{"query": "a"}]}, "onerror": "e"}',
    '{"query": "SELECT \'\\u00e9\\ud83d\\ude00\'", "onerror": "CREATE TABLE e AS SELECT \'<%= error_message %>\'::text"}',
]
form_bodies = [
    'query=SELECT+*+FROM+untitle_table_4&api_key=1234',
    'query%5B0%5D=select+1&query%5B1%5D=select+%27x%27',
    'query[query][0][query]=select+1&query[query][0][onerror]=select+2&query[query][0][timeout]=1500&query[onsuccess]=select+3',
    'query[0][query]=select+1&query[0][onerror]=e1&query[1]=select+2&onsuccess=js&onerror=je',
    'query[]=a&query[]=b&query[]=c',
    'query=a&query=b',
    'query[5]=x&query[2]=y',
    'query[a=1&b]=2&=3&x',
    'query[query][0][query]=a&query[query][0][timeout]=soon',
    'query=%ff%fe',
    'query[0]=a&query[x]=b',
    'q[a][b][c][d][][]=1&q[a]=2',
]

# fuzz_job_parse: selector byte, URL query, '\n', body.
jp = []
for b in json_bodies:
    jp.append(b'\x00\n' + b.encode())
for b in form_bodies:
    jp.append(b'\x01\n' + b.encode())
jp += [b'\x02\n{"query": "select 1"}', b'\x02\nquery=select+1', b'\x02query=select+1\n',
       b'\x03api_key=k\n{"query": ["a"]}', b'\x01query[0]=a\nquery[1]=b', b'\x05\nquery=x',
       b'\x04\nquery[]=select+1', b'\x00query=from+url\n{"onerror": "e"}']
write('job_parse', jp)

write('form', form_bodies + ['a=%41%4', '+%2B%%20', 'a[b][c]=1&a[b][]=2&a[b][0]=3', ''])

# fuzz_http: raw requests. User `fuzz`, master key `fuzzkey` (fuzz_http.cpp).
basic = base64.b64encode(b'fuzz:fuzzkey').decode()
def req(method, path, body=None, headers=(), ctype=None):
    h = ['%s %s HTTP/1.1' % (method, path), 'Host: 127.0.0.1']
    h += list(headers)
    if ctype:
        h.append('Content-Type: ' + ctype)
    if body is not None:
        h.append('Content-Length: %d' % len(body.encode()))
    return '\r\n'.join(h) + '\r\n\r\n' + (body or '')
auth = ['Authorization: Bearer fuzzkey']
j = 'application/json'
f = 'application/x-www-form-urlencoded'
http = [
    req('GET', '/health'), req('GET', '/ready'), req('GET', '/metrics'),
    req('OPTIONS', '/api/v2/sql/job'), req('OPTIONS', '*'),
    req('POST', '/user/fuzz/api/v2/sql/job', '{"query": "select 1"}', auth, j),
    req('POST', '/api/v2/sql/job', '{"query": ["select 1", "select 2"]}', ['Host: fuzz.localhost'] + auth, j),
    req('POST', '/user/fuzz/api/v1/sql/job', 'query=select+1&api_key=fuzzkey', (), f),
    req('POST', '/user/fuzz/api/v2/sql/job?api_key=fuzzkey&query=select+1', ''),
    req('POST', '/user/fuzz/api/v2/sql/job', json_bodies[2], ['Authorization: Basic ' + basic], j),
    req('POST', '/user/fuzz/api/v2/sql/job', json_bodies[3], auth + ['Idempotency-Key: k1'], j),
    req('POST', '/user/fuzz/api/v2/sql/job', '{"query": "a",', auth, j),
    req('POST', '/user/fuzz/api/v2/sql/job', '{"query": "x"}', ['Authorization: Bearer wrong'], j),
    req('POST', '/user/nobody/api/v2/sql/job', '{"query": "x"}', auth, j),
    req('POST', '/user/fuzz/api/v2/sql/job', 'query[query][0][query]=a&query[query][0][timeout]=9&api_key=fuzzkey', (), f),
    req('GET', '/user/fuzz/api/v2/sql/job', None, auth),
    req('GET', '/user/fuzz/api/v2/sql/job?status=done,failed&limit=5&cursor=abc', None, auth),
    req('GET', '/user/fuzz/api/v2/sql/job?limit=1000&status=bogus', None, auth),
    req('GET', '/user/fuzz/api/v2/sql/job/00000000-0000-4000-8000-000000000000?wait=0.1', None, auth),
    req('GET', '/user/fuzz/api/v2/sql/job/abc?wait=-1&api_key=fuzzkey'),
    req('DELETE', '/user/fuzz/api/v2/sql/job/abc', None, auth),
    req('DELETE', '/user/fuzz/api/v2/sql/job/xabc', None, auth),
    req('GET', '/user/fuzz/api/v1/jobs-wip', None, auth),
    req('GET', '/api/v1/jobs-wip?api_key=fuzzkey', None, ['Host: fuzz.carto.com']),
    req('HEAD', '/health'),
    req('PUT', '/user/fuzz/api/v2/sql/job', '{}', auth, j),
    req('GET', '/nope'),
    # chunked body
    'POST /user/fuzz/api/v2/sql/job HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzzkey\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"que\r\n11\r\nry": "select 1"}\r\n0\r\n\r\n',
    'POST /user/fuzz/api/v2/sql/job HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n',
    # bad Content-Length
    'POST /user/fuzz/api/v2/sql/job HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n{"query": "a"}',
    'POST /user/fuzz/api/v2/sql/job HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
    'POST /user/fuzz/api/v2/sql/job HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n',
    'POST /user/fuzz/api/v2/sql/job HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde',
    # pipelined, HTTP/1.0, garbage
    req('GET', '/health') + req('GET', '/user/fuzz/api/v2/sql/job', None, auth),
    'GET /health HTTP/1.0\r\n\r\n',
    'GET /user/fuzz/api/v2/sql/job/%2e%2e HTTP/1.1\r\nHost: x\r\n\r\n',
    'GARBAGE\r\n\r\n',
]
write('http', http)
