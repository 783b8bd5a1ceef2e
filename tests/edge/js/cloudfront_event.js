// Shared by the node and njs harnesses (ES5): a viewer-request event built from a raw request
// exactly as CloudFront builds it, and the Function's answer reduced to what tests compare.

function cloudfrontQuerystring(query) {
  // Split on '&', name and value at the first '=', "" without '=', names and values left
  // percent-encoded; a repeated name is one field whose multiValue holds every value in order.
  var querystring = {};
  var pieces, i, piece, eq, name, value, field;
  if (query.charAt(0) === '?') {
    query = query.slice(1);
  }
  pieces = query === '' ? [] : query.split('&');
  for (i = 0; i < pieces.length; i++) {
    piece = pieces[i];
    if (piece === '') {
      continue;
    }
    eq = piece.indexOf('=');
    name = eq < 0 ? piece : piece.slice(0, eq);
    value = eq < 0 ? '' : piece.slice(eq + 1);
    if (Object.prototype.hasOwnProperty.call(querystring, name)) {
      field = querystring[name];
      if (!field.multiValue) {
        field.multiValue = [{value: field.value}];
      }
      field.multiValue.push({value: value});
    } else {
      // defineProperty: a parameter named __proto__ is an own field, as in CloudFront's object.
      Object.defineProperty(querystring, name, {
        value: {value: value}, enumerable: true, writable: true, configurable: true
      });
    }
  }
  return querystring;
}

function cloudfrontEvent(c) {
  var headers = {host: {value: 'd111111abcdef8.cloudfront.net'}};
  var i, multi;
  if (c.accept_values) {
    multi = [];
    for (i = 0; i < c.accept_values.length; i++) {
      multi.push({value: c.accept_values[i]});
    }
    headers.accept = {value: c.accept_values[0], multiValue: multi};
  } else if (c.accept !== null && c.accept !== undefined) {
    headers.accept = {value: c.accept};
  }
  return {
    version: '1.0',
    context: {
      distributionDomainName: 'd111111abcdef8.cloudfront.net',
      distributionId: 'EDFDVBD6EXAMPLE',
      eventType: 'viewer-request',
      requestId: '4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ=='
    },
    viewer: {ip: '198.51.100.11'},
    request: {
      method: 'GET',
      uri: c.path,
      querystring: cloudfrontQuerystring(c.query),
      headers: headers,
      cookies: {}
    }
  };
}

function outcome(result) {
  var fields = 0;
  var headers = {};
  var name;
  if (result.statusCode === undefined) {
    for (name in result.querystring) {
      fields++;
    }
    return {status: 200, uri: result.uri, querystring_fields: fields};
  }
  // Every header the Function sets, so a new one cannot go unnoticed by the parity tests.
  for (name in result.headers) {
    headers[name] = result.headers[name].value;
  }
  return {
    status: result.statusCode,
    headers: headers,
    description: result.statusDescription,
    field: result.headers['x-imgcdn-error-field'].value,
    cache_control: result.headers['cache-control'].value,
    content_type: result.headers['content-type'].value,
    body: result.body
  };
}

function runCase(handler, c) {
  try {
    return outcome(handler(cloudfrontEvent(c)));
  } catch (e) {
    return {status: 'threw', error: String(e)};
  }
}
