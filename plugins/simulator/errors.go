package simulator

import (
	"net/http"
	"strconv"
)

// Azure OpenAI answers most service-level errors with {"error":{"code","message"}}
// (code is a string, even for numeric codes) and request validation errors
// with OpenAI's {"error":{"message","type","param","code"}}. The bodies
// below are copied from observed Azure traffic (see
// the wire-format reference (../shared/reference/wire-formats.md) §2).

const (
	msgUnauthorized = "Access denied due to invalid subscription key or wrong API endpoint. " +
		"Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."
	msgDeploymentNotFound = "The API deployment for this resource does not exist. " +
		"If you created the deployment within the last 5 minutes, please wait a moment and try again."
	msgInternalServerError = "Backend returned unexpected response. Please contact Microsoft for help."
	msgServiceUnavailable  = "The service is temporarily unable to process your request. Please try again later."
	msgInvalidJSON         = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using " +
		"your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. " +
		"If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)"
	msgPromptFiltered = "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. " +
		"Please modify your prompt and retry. To learn more about our content filtering policies please read our " +
		"documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
	msgQuotaTail = " Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."
)

var (
	bodyUnauthorized       = azureErrorBody("401", msgUnauthorized)
	bodyResourceNotFound   = azureErrorBody("404", "Resource not found")
	bodyDeploymentNotFound = azureErrorBody("DeploymentNotFound", msgDeploymentNotFound)
	bodyInternalError      = azureErrorBody("InternalServerError", msgInternalServerError)
	bodyServiceUnavailable = azureErrorBody("ServiceUnavailable", msgServiceUnavailable)
)

// azureErrorBody returns {"error":{"code":code,"message":msg}}.
func azureErrorBody(code, msg string) []byte {
	b := make([]byte, 0, len(code)+len(msg)+40)
	b = append(b, `{"error":{"code":`...)
	b = appendJSONString(b, code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	return append(b, "}}"...)
}

// requestError is a 4xx in OpenAI's shape:
// {"error":{"message":…,"type":"invalid_request_error","param":…,"code":…}}.
type requestError struct {
	status  int
	message string
	param   string // "" → null
	code    string // "" → null
}

func (e *requestError) Error() string { return e.message }

func badRequest(param, code, msg string) *requestError {
	return &requestError{status: http.StatusBadRequest, message: msg, param: param, code: code}
}

func (e *requestError) body() []byte {
	b := make([]byte, 0, len(e.message)+len(e.param)+len(e.code)+80)
	b = append(b, `{"error":{"message":`...)
	b = appendJSONString(b, e.message)
	b = append(b, `,"type":"invalid_request_error","param":`...)
	b = appendNullableString(b, e.param)
	b = append(b, `,"code":`...)
	b = appendNullableString(b, e.code)
	return append(b, "}}"...)
}

// writeJSON writes a complete JSON response with Content-Length.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

var headerJSON = []string{"application/json"}

// promptFilteredBody is the observed 400 an Azure deployment returns when
// the prompt trips the content filter (wire-formats.md §2.2): note the
// extra "status", "type":null and innererror.content_filter_result (singular),
// which differ from the OpenAPI spec's inner_error.content_filter_results.
func promptFilteredBody(category string) []byte {
	b := make([]byte, 0, 700)
	b = append(b, `{"error":{"message":`...)
	b = appendJSONString(b, msgPromptFiltered)
	b = append(b, `,"type":null,"param":"prompt","code":"content_filter","status":400,`+
		`"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":`...)
	b = appendPromptFilterResults(b, category)
	return append(b, "}}}"...)
}

// rateLimitMessage is Azure's 429 text. kind is "token" or "call".
func rateLimitMessage(operation, apiVersion, kind string, seconds int64) string {
	unit := " seconds."
	if seconds == 1 {
		unit = " second."
	}
	return "Requests to the " + operation + " Operation under Azure OpenAI API version " + apiVersion +
		" have exceeded " + kind + " rate limit of your current OpenAI S0 pricing tier. Please retry after " +
		strconv.FormatInt(seconds, 10) + unit + msgQuotaTail
}

// operationNotSupportedBody is Azure's 400 for e.g. embeddings on a chat
// model deployment.
func operationNotSupportedBody(operation, model string) []byte {
	return azureErrorBody("OperationNotSupported", "The "+operation+
		" operation does not work with the specified model, "+model+
		". Please choose different model and try again. You can learn more about which models can be used with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993.")
}
