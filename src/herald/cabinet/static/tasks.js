// Send tasks: upload the file with a progress bar (XMLHttpRequest's upload events), then
// go to the task's next step. Without this script the form posts as usual.
(function () {
  "use strict";

  function setup(form) {
    var bar = form.querySelector("progress");
    var box = form.querySelector("[data-upload-progress]");
    var percent = form.querySelector("[data-upload-percent]");
    var problem = form.querySelector("[data-upload-problem]");
    var button = form.querySelector('button[type="submit"]');
    var token = form.querySelector('input[name="csrf_token"]');

    function say(text) {
      problem.textContent = "";
      var p = document.createElement("p");
      p.className = "problem";
      p.setAttribute("role", "alert");
      p.textContent = text;
      problem.appendChild(p);
    }

    function done() {
      button.disabled = false;
      box.hidden = true;
    }

    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) return;
      event.preventDefault();
      var xhr = new XMLHttpRequest();
      var data = new FormData(form);
      problem.textContent = "";
      button.disabled = true;
      box.hidden = false;
      bar.value = 0;
      percent.textContent = "0 %";
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        var p = Math.floor((e.loaded * 100) / e.total);
        bar.value = p;
        percent.textContent = p + " %";
      });
      xhr.addEventListener("load", function () {
        if (xhr.status >= 200 && xhr.status < 300) {
          bar.value = 100;
          percent.textContent = "100 %";
          window.location.assign(xhr.responseText || form.action.replace(/\/file$/, ""));
          return;
        }
        done();
        if (xhr.status === 413) {
          say(form.getAttribute("data-too-large"));
        } else if ((xhr.getResponseHeader("content-type") || "").indexOf("text/html") === 0) {
          // The server's own sentence, in the reader's language (tasks/_problem.html).
          var parsed = new DOMParser().parseFromString(xhr.responseText, "text/html");
          var text = parsed.body.textContent.trim();
          say(text || form.getAttribute("data-failed"));
        } else {
          say(form.getAttribute("data-failed"));
        }
      });
      xhr.addEventListener("error", function () {
        done();
        say(form.getAttribute("data-failed"));
      });
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      if (token) xhr.setRequestHeader("X-CSRF-Token", token.value);
      xhr.send(data);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var forms = document.querySelectorAll("form[data-upload]");
    for (var i = 0; i < forms.length; i++) setup(forms[i]);
  });
})();
