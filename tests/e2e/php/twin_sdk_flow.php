<?php
// TWIN's own PHP SDK against Herald on loopback, through its public classes only.
//
// Usage: php twin_sdk_flow.php PORT EMAIL PASSWORD PHONE
// Prints one JSON object per step on stdout; exits 1 (with the reason on stderr) on the
// first step that does not do what TWIN's API promises. Run by tests/e2e/test_twin_sdk.py.

declare(strict_types=1);

require getenv('TWIN_SDK_DIR') . '/autoload.php';

use GuzzleHttp\Client;
use GuzzleHttp\HandlerStack;
use GuzzleHttp\Middleware;
use Psr\Http\Message\RequestInterface;
use Twin\Sdk\Http\Authenticator;
use Twin\Sdk\Http\Messaging\V1\MessagingHttpClient;
use Twin\Sdk\Http\Messaging\V1\Request\Messaging\CancelMessageSendingRequest;
use Twin\Sdk\Http\Messaging\V1\Request\Messaging\CreateMessageBatchRequest;
use Twin\Sdk\Http\Messaging\V1\Request\Messaging\Entity\MessageList;
use Twin\Sdk\Http\Messaging\V1\Request\Messaging\MessageListRequest;
use Twin\Sdk\Http\Messaging\V1\Request\Task\AddMessageRequest;
use Twin\Sdk\Http\Messaging\V1\Request\Task\CreateTaskRequest;
use Twin\Sdk\Http\Messaging\V1\Request\Task\TaskListRequest;
use Twin\Sdk\Http\Messaging\V1\Request\Task\UpdateTaskRequest;
use Twin\Sdk\Http\Messaging\V1\Request\Template\CreateTemplateRequest;
use Twin\Sdk\Http\Messaging\V1\Request\Template\TemplateListRequest;
use Twin\Sdk\Http\Messaging\V1\Request\Template\UpdateTemplateRequest;
use Twin\Sdk\Http\Response;

[, $port, $email, $password, $phone] = $argv;

// The SDK's hosts are fixed (notify.twin24.ai, iam.twin24.ai); Guzzle lets a client be
// given, so a middleware sends each request to Herald instead, keeping its path.
$twinHosts = ['notify.twin24.ai', 'iam.twin24.ai', 'notify.dev.twin24.ai', 'iam.dev.twin24.ai'];
$seen = [];
$stack = HandlerStack::create();
$stack->push(Middleware::mapRequest(
    static function (RequestInterface $request) use ($port, $twinHosts, &$seen): RequestInterface {
        $uri = $request->getUri();
        if (!in_array($uri->getHost(), $twinHosts, true)) {
            throw new RuntimeException('the SDK called an unexpected host: ' . $uri->getHost());
        }
        $seen[] = $request->getMethod() . ' ' . $uri->getPath();
        return $request->withUri($uri->withScheme('http')->withHost('127.0.0.1')->withPort((int)$port));
    }
));
$client = new Client(['handler' => $stack]);

function step(string $name, array $facts = []): void
{
    echo json_encode(['step' => $name] + $facts, JSON_UNESCAPED_SLASHES), "\n";
}

function fail(string $why): never
{
    fwrite(STDERR, $why . "\n");
    exit(1);
}

function check(Response $response, string $what): Response
{
    if ($response->statusCode >= 400 || $response->exception !== null || !property_exists($response, 'body')) {
        fail("$what: HTTP {$response->statusCode}, error " . json_encode($response->error)
            . ', ' . ($response->exception?->getMessage() ?? '') . ', body ' . $response->rawBody);
    }
    return $response;
}

// A 1-second token: every later call finds it expired and the SDK refreshes it by itself.
$refreshes = 0;
$auth = Authenticator::fromBasic($email, $password, 1, 0, [], $client);
$auth->onTokenRefresh(static function (string $token, string $refresh, DateTimeImmutable $exp) use (&$refreshes): void {
    ++$refreshes;
});
$api = new MessagingHttpClient($auth, $client);
$api->throwExceptionOnErrorResponse(true);

// Templates.
$created = check($api->createTemplate(new CreateTemplateRequest([
    'name' => 'sdk-greeting',
    'channels' => ['sms' => ['text' => 'Hello {{ name }}, your code is {{ code }}']],
])), 'create template');
$templateId = $created->body->id;
step('template created', ['id' => $templateId, 'signedIn' => $refreshes]);

sleep(2);  // the token (ttl 1 s) is now expired by the SDK's clock
$list = check($api->getTemplateList(new TemplateListRequest(['name' => 'sdk-greeting'])), 'list templates');
if ($list->body->count < 1) {
    fail('the template just created is not listed');
}
$refreshCalls = count(array_filter($seen, static fn(string $s): bool => str_ends_with($s, '/auth/refresh')));
if ($refreshCalls < 1) {
    fail('the SDK did not refresh its expired token: ' . json_encode($seen));
}
step('token refreshed by the SDK', ['refreshCalls' => $refreshCalls, 'tokensReceived' => $refreshes]);

check($api->updateTemplate(new UpdateTemplateRequest([
    'name' => 'sdk-greeting',
    'channels' => ['sms' => ['text' => 'Hi {{ name }}: {{ code }}']],
]), $templateId), 'update template');
$template = check($api->getTemplateData($templateId), 'get template');
step('template updated', ['name' => $template->body->name]);

// Send one message now, one an hour from now (to cancel).
$batch = check($api->createMessageBatch(new CreateMessageBatchRequest([
    'messages' => new MessageList([
        [
            'destinations' => [['phone' => $phone]],
            'channels' => ['sms' => ['text' => 'Sent by TWIN\'s SDK']],
        ],
        [
            'destinations' => [['phone' => $phone]],
            'channels' => ['sms' => ['text' => 'Scheduled by TWIN\'s SDK']],
            'sendAt' => new DateTimeImmutable('+1 hour'),  // the SDK sends its json_encode
        ],
    ]),
])), 'send messages');
$ids = [];
foreach ($batch->body as $item) {
    $ids[] = $item->id;
}
if (count($ids) !== 2) {
    fail('expected two message ids, got ' . $batch->rawBody);
}
step('messages sent', ['ids' => $ids]);

$listed = check($api->getMessageList(new MessageListRequest(['id' => $ids])), 'list messages');
if ($listed->body->count !== 2) {
    fail('expected the two messages listed, got ' . $listed->rawBody);
}
step('messages listed', ['count' => $listed->body->count]);

$cancelled = check($api->cancelMessageSending(new CancelMessageSendingRequest(['id' => $ids[1]])), 'cancel');
$statuses = [];
foreach ($cancelled->body as $item) {
    $statuses[] = $item->status;
}
step('message cancelled', ['statuses' => $statuses]);
$after = check($api->getMessageList(new MessageListRequest(['id' => $ids[1]])), 'list cancelled');
foreach ($after->body->items as $item) {
    if (strtolower($item->status) !== 'cancelled') {
        fail('the cancelled message is ' . $item->status);
    }
}

// A send task: create, pause and resume (before its file, as Herald allows), add a file,
// start, read its status, rename, list, delete.
$task = check($api->createTask(new CreateTaskRequest(['name' => 'sdk-task'])), 'create task');
$taskId = $task->body->id;
check($api->pauseTask($taskId), 'pause task');
$paused = check($api->taskStatus($taskId), 'task status');
check($api->resumeTask($taskId), 'resume task');
$csv = tempnam(sys_get_temp_dir(), 'sdk') . '.csv';
file_put_contents($csv, "phone,text\n$phone,Row one\n");
$upload = new AddMessageRequest();
$upload->addFile($csv);
check($api->addMessages($upload, $taskId), 'add messages to task');
unlink($csv);
check($api->startTask($taskId), 'start task');
$started = check($api->taskStatus($taskId), 'task status');
check($api->updateTask(new UpdateTaskRequest(['name' => 'sdk-task renamed']), $taskId), 'rename task');
$tasks = check($api->getTaskList(new TaskListRequest(['name' => 'sdk-task renamed'])), 'list tasks');
if ($tasks->body->count < 1) {
    fail('the renamed task is not listed: ' . $tasks->rawBody);
}
step('task managed', [
    'id' => $taskId,
    'statusWhilePaused' => $paused->body->status,
    'statusStarted' => $started->body->status,
    'listed' => $tasks->body->count,
]);
check($api->deleteTask($taskId), 'delete task');
check($api->deleteTemplate($templateId), 'delete template');
step('cleaned up');
step('done', ['requests' => $seen]);
